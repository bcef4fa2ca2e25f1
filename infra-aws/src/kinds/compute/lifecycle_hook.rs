//! `aws_autoscaling_lifecycle_hook`: the lifecycle hook builder.

use std::time::Duration;

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::super::check_physical_name;
use super::Asg;

/// When a lifecycle hook holds an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleTransition {
    /// Before the instance is put in service (`Pending:Wait`).
    Launching,
    /// Before the instance is terminated (`Terminating:Wait`): scale-in, health-check
    /// replacement, instance refresh.
    Terminating,
}

impl LifecycleTransition {
    /// The name AWS uses (`autoscaling:EC2_INSTANCE_TERMINATING`).
    pub fn api_name(self) -> &'static str {
        match self {
            LifecycleTransition::Launching => "autoscaling:EC2_INSTANCE_LAUNCHING",
            LifecycleTransition::Terminating => "autoscaling:EC2_INSTANCE_TERMINATING",
        }
    }
}

/// What happens when the heartbeat timeout passes without the action being completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleDefault {
    /// Go on: launch into service, or terminate.
    Continue,
    /// Give up: a launching instance is terminated; a terminating one is terminated too, but
    /// the group's other hooks are skipped.
    Abandon,
}

impl LifecycleDefault {
    /// The name AWS uses (`CONTINUE`, `ABANDON`).
    pub fn api_name(self) -> &'static str {
        match self {
            LifecycleDefault::Continue => "CONTINUE",
            LifecycleDefault::Abandon => "ABANDON",
        }
    }
}

/// AWS's bounds on a hook's heartbeat timeout, in seconds.
pub(crate) const HEARTBEAT_RANGE: (i64, i64) = (30, 7200);
/// AWS's limit on notification metadata, in characters.
const METADATA_MAX: usize = 1023;

pub(crate) static LIFECYCLE_HOOK: KindSchema =
    KindSchema::new("aws_autoscaling_lifecycle_hook", "aws")
        .force_new(&["autoscaling_group_name"])
        .validate(validate_lifecycle_hook)
        .codegen(crate::kinds::codegen::lifecycle_hook);

kind! {
    /// A lifecycle hook of an auto scaling group: instances wait in `Terminating:Wait` (or
    /// `Pending:Wait`) until something completes the lifecycle action or the heartbeat timeout
    /// passes, e.g. so a Swarm node can drain before its instance goes:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use infra_aws::{Asg, LifecycleHook};
    /// # let mut s = infra_core::Stack::new("demo");
    /// # let managers = s.add(Asg::new("managers"));
    /// s.add(
    ///     LifecycleHook::on_terminate("managers-drain")
    ///         .asg(&managers)
    ///         .heartbeat(Duration::from_secs(300)),
    /// );
    /// ```
    ///
    /// Lifecycle hooks can't be tagged: a hook belongs to its (tagged) group and is named
    /// `<stack>-<name>` (find it with `DescribeLifecycleHooks` on the group rather than guessing
    /// the name). Its id is that name. Notification targets (SNS, SQS) are not declarable; the
    /// instance itself completes the action.
    pub struct LifecycleHook => LIFECYCLE_HOOK
}

impl LifecycleHook {
    /// A hook on `transition`, named `name`, with AWS's default heartbeat timeout (one hour) and
    /// default result: `CONTINUE` for a terminating hook (the instance goes anyway once the
    /// timeout passes), `ABANDON` for a launching one (an instance nobody confirmed is not put
    /// in service).
    pub fn new(name: &str, transition: LifecycleTransition) -> Self {
        let mut s = ResourceSpec::new(&LIFECYCLE_HOOK, name);
        let default = match transition {
            LifecycleTransition::Terminating => LifecycleDefault::Continue,
            LifecycleTransition::Launching => LifecycleDefault::Abandon,
        };
        s.set("lifecycle_transition", transition.api_name())
            .set("heartbeat_timeout", 3600)
            .set("default_result", default.api_name());
        LifecycleHook(s)
    }
    /// A hook holding terminating instances (`Terminating:Wait`), default result `CONTINUE`.
    pub fn on_terminate(name: &str) -> Self {
        LifecycleHook::new(name, LifecycleTransition::Terminating)
    }
    /// A hook holding launching instances (`Pending:Wait`), default result `ABANDON`.
    pub fn on_launch(name: &str) -> Self {
        LifecycleHook::new(name, LifecycleTransition::Launching)
    }
    /// The auto scaling group it belongs to.
    pub fn asg(mut self, asg: &Ref<Asg>) -> Self {
        self.0.set("autoscaling_group_name", asg.id());
        self
    }
    /// How long an instance waits for the action to be completed (or a heartbeat recorded)
    /// before the default result applies; whole seconds, 30 s to 2 h.
    pub fn heartbeat(mut self, timeout: Duration) -> Self {
        if timeout.subsec_nanos() == 0 {
            let secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
            self.0.set("heartbeat_timeout", secs);
        } else {
            // Reported by validation: AWS takes whole seconds.
            self.0.set("heartbeat_timeout", timeout.as_secs_f64());
        }
        self
    }
    /// What happens when the heartbeat timeout passes.
    pub fn default_result(mut self, result: LifecycleDefault) -> Self {
        self.0.set("default_result", result.api_name());
        self
    }
    /// Text passed to the notification target with each lifecycle action (up to 1,023
    /// characters).
    pub fn metadata(mut self, text: &str) -> Self {
        self.0.set("notification_metadata", text);
        self
    }
}

/// Characters AWS allows in lifecycle hook names (`[A-Za-z0-9\-_\/]`).
fn hook_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_/".contains(c)
}

fn validate_lifecycle_hook(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "lifecycle hook", 255, hook_name_char);
    c.required_ref("autoscaling_group_name", "asg");
    match c.required("lifecycle_transition").and_then(Value::as_str) {
        Some("autoscaling:EC2_INSTANCE_LAUNCHING" | "autoscaling:EC2_INSTANCE_TERMINATING")
        | None => {}
        Some(other) => c.problem(
            "lifecycle_transition",
            format!("`{other}` is not a lifecycle transition"),
        ),
    }
    match c.required("default_result").and_then(Value::as_str) {
        Some("CONTINUE" | "ABANDON") | None => {}
        Some(other) => c.problem(
            "default_result",
            format!("`{other}` is not CONTINUE or ABANDON"),
        ),
    }
    let (min, max) = HEARTBEAT_RANGE;
    match spec.get("heartbeat_timeout") {
        Some(Value::Int(_)) => {
            c.int_in("heartbeat_timeout", min, max);
        }
        Some(Value::Float(f)) => c.problem(
            "heartbeat_timeout",
            format!("{f} s is not a whole number of seconds"),
        ),
        _ => c.problem("heartbeat_timeout", "is required"),
    }
    if let Some(m) = spec.get_str("notification_metadata") {
        if m.chars().count() > METADATA_MAX {
            c.problem(
                "notification_metadata",
                format!(
                    "is {} characters long; AWS allows {METADATA_MAX}",
                    m.chars().count()
                ),
            );
        }
    }
    c.finish()
}

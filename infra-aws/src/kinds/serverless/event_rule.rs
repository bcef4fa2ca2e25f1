//! `aws_cloudwatch_event_rule`: an EventBridge rule on the default event bus with its targets.
//!
//! Targets can't be tagged: they belong to their tagged rule (DESIGN.md, "Sub-objects that
//! cannot be tagged") and are a field of it (`targets`, by target id).

use infra_core::dsl::{Arn, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

use super::LambdaFunction;
use crate::kinds::{check_physical_name, check_tags, Asg};

pub(crate) static EVENT_RULE: KindSchema = KindSchema::new("aws_cloudwatch_event_rule", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a rule",
    )
    .computed(&["id", "arn"])
    .unordered(&["targets"])
    .validate(validate_rule)
    .codegen(crate::kinds::codegen::event_rule);

/// The `detail-type`s of an auto scaling group's instance launches and terminations.
pub const ASG_INSTANCE_EVENTS: &[&str] = &[
    "EC2 Instance Launch Successful",
    "EC2 Instance Terminate Successful",
];

kind! {
    /// An EventBridge rule named `<stack>-<name>` (its id is the name) on the default bus,
    /// tagged with the stack, matching an event pattern and sending the events to its targets:
    ///
    /// ```
    /// # use infra_aws::*;
    /// # let mut s = infra_core::Stack::new("prod");
    /// # let f = s.add(LambdaFunction::new("node-events"));
    /// # let workers = s.add(Asg::new("workers"));
    /// let rule = s.add(
    ///     EventRule::new("node-events")
    ///         .asg_instance_events(&[&workers])
    ///         .target("node-events", &f),
    /// );
    /// ```
    ///
    /// A Lambda target also needs a [`LambdaPermission`](crate::LambdaPermission) for
    /// `events.amazonaws.com` from the rule's `arn()`. The pattern is validated before any
    /// call (a JSON object whose leaves are lists of match values).
    pub struct EventRule => EVENT_RULE
}

impl EventRule {
    /// An enabled rule named `<stack>-<name>`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&EVENT_RULE, name);
        s.set("state", "ENABLED")
            .set("targets", Value::List(Vec::new()));
        EventRule(s)
    }
    /// The event pattern (EventBridge's JSON:
    /// `{"source": ["aws.autoscaling"], "detail-type": [...]}`).
    pub fn event_pattern(mut self, pattern: serde_json::Value) -> Self {
        self.0.set("event_pattern", Value::from_json(pattern));
        self
    }
    /// Matches the instance launches and terminations of these auto scaling groups of the
    /// stack (`aws.autoscaling`, [`ASG_INSTANCE_EVENTS`], by group name).
    pub fn asg_instance_events(mut self, groups: &[&Ref<Asg>]) -> Self {
        self.0.set(
            "event_pattern",
            map! {
                "source" => Value::List(vec!["aws.autoscaling".into()]),
                "detail-type" => Value::List(ASG_INSTANCE_EVENTS.iter().map(|t| Value::from(*t)).collect()),
                "detail" => map! {
                    "AutoScalingGroupName" => Value::List(groups.iter().map(|g| g.id().into()).collect()),
                },
            },
        );
        self
    }
    /// Sends the matched events to a function of the stack; `id` names the target in the rule.
    pub fn target(self, id: &str, function: &Ref<LambdaFunction>) -> Self {
        self.target_arn(id, function.output::<Arn<LambdaFunction>>("arn"))
    }
    /// Sends the matched events to a function by ARN.
    pub fn target_arn(mut self, id: &str, arn: impl Into<Input<Arn<LambdaFunction>>>) -> Self {
        self.0.push(
            "targets",
            map! { "id" => id, "arn" => Value::from(arn.into()) },
        );
        self
    }
    /// Disables the rule (it stays, matching nothing).
    pub fn disabled(mut self) -> Self {
        self.0.set("state", "DISABLED");
        self
    }
    /// The description.
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Typed outputs of a rule.
pub trait EventRuleOutputs {
    /// The rule's ARN (the source ARN of its targets' permissions).
    fn arn(&self) -> Output<Arn<EventRule>>;
}

impl EventRuleOutputs for Ref<EventRule> {
    fn arn(&self) -> Output<Arn<EventRule>> {
        self.output("arn")
    }
}

/// Characters AWS allows in rule names (`[.\-_A-Za-z0-9]`).
fn rule_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ".-_".contains(c)
}

/// Checks an event pattern: an object whose every leaf is a non-empty list of match values
/// (strings, numbers, booleans, null, or matcher objects such as `{"prefix": "x"}`).
pub(crate) fn pattern_problems(pattern: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Map(m) if m.is_empty() => out.push(format!("`{at}` is an empty object")),
            Value::Map(m) => {
                for (k, v) in m {
                    let here = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match v {
                        Value::Map(_) => walk(v, &here, out),
                        Value::List(l) if l.is_empty() => out.push(format!(
                            "`{here}` is an empty list (it would match nothing)"
                        )),
                        Value::List(l) => {
                            for item in l {
                                if matches!(item, Value::List(_)) {
                                    out.push(format!("`{here}` holds a list inside a list"));
                                }
                            }
                        }
                        Value::Ref(_) => {}
                        other => out.push(format!(
                            "`{here}` is {other}; match values go in a list (`[{other}]`)"
                        )),
                    }
                }
            }
            other => out.push(format!("the pattern must be a JSON object, got {other}")),
        }
    }
    let mut out = Vec::new();
    walk(pattern, "", &mut out);
    if out.is_empty() && pattern.to_json().to_string().len() > 4096 {
        out.push("is longer than 4,096 characters".into());
    }
    out
}

fn validate_rule(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "rule", 64, rule_name_char);
    check_tags(&mut c, spec);
    match spec.get("event_pattern") {
        Some(p) => {
            for problem in pattern_problems(p) {
                c.problem("event_pattern", problem);
            }
        }
        None => c.problem(
            "event_pattern",
            "is required: `.event_pattern(json)` or `.asg_instance_events(&[..])`",
        ),
    }
    match spec.get_str("state") {
        Some("ENABLED" | "DISABLED") => {}
        other => c.problem("state", format!("{other:?} is not ENABLED or DISABLED")),
    }
    let targets = spec
        .get("targets")
        .and_then(Value::as_list)
        .unwrap_or_default();
    if targets.len() > 5 {
        c.problem(
            "targets",
            format!("{} targets; a rule has at most 5", targets.len()),
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in targets.iter().filter_map(Value::as_map) {
        let id = t.get("id").and_then(Value::as_str).unwrap_or_default();
        let valid = !id.is_empty() && id.len() <= 64 && id.chars().all(rule_name_char);
        if !valid {
            c.problem(
                "targets",
                format!("target id `{id}` must be 1-64 of `[.-_A-Za-z0-9]`"),
            );
        }
        if !ids.insert(id) {
            c.problem("targets", format!("target id `{id}` is used twice"));
        }
    }
    if let Some(d) = spec.get_str("description") {
        if d.chars().count() > 512 {
            c.problem("description", "is longer than 512 characters");
        }
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_objects_of_lists() {
        let ok = Value::from_json(serde_json::json!({
            "source": ["aws.autoscaling"],
            "detail": { "AutoScalingGroupName": ["a", "b"], "x": [{ "prefix": "y" }] }
        }));
        assert!(pattern_problems(&ok).is_empty());
        let bad = Value::from_json(serde_json::json!({
            "source": "aws.autoscaling",
            "detail": { "AutoScalingGroupName": [] }
        }));
        let problems = pattern_problems(&bad);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("`source`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("detail.AutoScalingGroupName")),
            "{problems:?}"
        );
        assert_eq!(
            pattern_problems(&Value::from("x")).len(),
            1,
            "a string is no pattern"
        );
    }
}

//! `aws_lb_listener`: an ELBv2 listener and its default action.
//!
//! * **Read.** `DescribeListeners` needs a load balancer (or listener ARNs): one paginated call
//!   per load balancer of the stack (from the listing the load balancers' read made, shared
//!   through [`Listings::load_balancers`]), then `DescribeTags`, 20 ARNs a call. Listeners of
//!   load balancers the stack doesn't own are never listed: a listener's load balancer is
//!   always one of the stack's.
//! * **Create** carries the tags. Listeners have no name: a retried create after a lost
//!   response finds the first one by its `infra:id` tag (the provider looks up before every
//!   retry). A port already taken on the load balancer is AWS's `DuplicateListener`, handled
//!   the same way.
//! * **Update** is one `ModifyListener` with what changed of the port, protocol, certificate,
//!   TLS policy and default action (a new protocol takes its certificate and policy along).
//!
//! The default action is read in the builder's shape: `forward` with its one target group, or
//! `redirect` with its protocol, port and status code (host, path and query are AWS's
//! defaults, `#{host}`, `/#{path}`, `#{query}`, which the builder never changes).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, Listener as AwsListener, ProtocolEnum,
    RedirectActionConfig, RedirectActionStatusCodeEnum,
};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::{map, Value};

use super::load_balancer::{stack_load_balancers, OwnedLb};
use super::{AwsKind, Listings};
use crate::kinds::elb::LISTENER;
use crate::provider::common::{
    all_tags, observed_from, opt_str, req_i64, req_str, updated_from, Cx, Props,
};
use crate::provider::elb_common::{adopt_elb, elb_tags, owned, tags_any, unowned, update_tags};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{discovered, observed_at, Discovery};

/// DescribeListeners' largest page.
const LISTENER_PAGE: i32 = 400;

/// The `aws_lb_listener` handler.
pub(super) struct Listener;

impl KindHandler for Listener {
    fn schema(&self) -> &'static KindSchema {
        &LISTENER
    }
}

/// The listeners of these load balancers (one paginated call each).
async fn listeners_of(cx: &Cx<'_>, lbs: &[OwnedLb]) -> Result<Vec<AwsListener>, ProviderError> {
    let mut out = Vec::new();
    for lb in lbs {
        let listed: Result<Vec<AwsListener>, ProviderError> =
            cx.c.elb_read
                .describe_listeners()
                .load_balancer_arn(&lb.arn)
                .page_size(LISTENER_PAGE)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .aws("DescribeListeners");
        match listed {
            Ok(l) => out.extend(l),
            // Deleted since it was listed: so are its listeners.
            Err(e) if e.class == ErrorClass::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The default action in the builder's shape.
fn action_value(a: &Action) -> Value {
    match a.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let tg = a.target_group_arn().or_else(|| {
                a.forward_config()
                    .and_then(|f| f.target_groups().first())
                    .and_then(|t| t.target_group_arn())
            });
            map! { "type" => "forward", "target_group_arn" => tg }
        }
        Some(ActionTypeEnum::Redirect) => {
            let r = a.redirect_config();
            map! {
                "type" => "redirect",
                "protocol" => r.and_then(|r| r.protocol()),
                "port" => r.and_then(|r| r.port()),
                "status_code" => r.and_then(|r| r.status_code()).map(|s| s.as_str()),
            }
        }
        other => map! { "type" => other.map(|t| t.as_str().to_ascii_lowercase()) },
    }
}

/// The stack's listeners on `lbs`, in the builder's shape.
async fn read_listeners(cx: &Cx<'_>, lbs: &[OwnedLb]) -> Result<Vec<Observed>, ProviderError> {
    let items = listeners_of(cx, lbs)
        .await?
        .into_iter()
        .filter_map(|l| Some((l.listener_arn()?.to_string(), l)))
        .collect();
    Ok(owned(cx, LISTENER.kind, items)
        .await?
        .into_iter()
        .map(|(arn, l, o)| listener_props(&l, &arn, &o.user).observed(o, arn))
        .collect())
}

/// A listener's properties in the builder's shape.
fn listener_props(l: &AwsListener, arn: &str, user: &BTreeMap<String, String>) -> Props {
    let tls = matches!(l.protocol(), Some(ProtocolEnum::Https | ProtocolEnum::Tls));
    let mut p = Props::default();
    p.set("load_balancer_arn", l.load_balancer_arn())
        .set("protocol", l.protocol().map(|p| p.as_str()))
        .set("port", l.port())
        .set(
            "default_action",
            l.default_actions().first().map(action_value),
        )
        .set("arn", arn)
        .tags(user);
    if tls {
        // The default certificate (the listener's first; others are SNI extras).
        let cert = l
            .certificates()
            .iter()
            .find(|c| c.is_default() != Some(false))
            .and_then(|c| c.certificate_arn());
        p.set("certificate_arn", cert)
            .set("ssl_policy", l.ssl_policy());
    }
    p
}

/// Why infra's builder can't declare this listener, if it can't: its protocol has no
/// constructor, or its default action is neither a forward to one target group nor a
/// permanent redirect to HTTPS.
fn inexpressible(l: &AwsListener) -> Option<String> {
    let protocol = l.protocol().map_or("?", |p| p.as_str());
    if !matches!(protocol, "HTTP" | "HTTPS" | "TCP") {
        return Some(format!(
            "its protocol is `{protocol}`: infra declares HTTP, HTTPS and TCP listeners"
        ));
    }
    let actions = l.default_actions();
    let [a] = actions else {
        return Some(format!(
            "it has {} default actions: infra declares one (a forward or a redirect to HTTPS)",
            actions.len()
        ));
    };
    match a.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let groups = a.forward_config().map_or(0, |f| f.target_groups().len());
            (groups > 1).then(|| {
                format!("it forwards to {groups} weighted target groups: infra forwards to one")
            })
        }
        Some(ActionTypeEnum::Redirect) => {
            let r = a.redirect_config();
            let https = r.and_then(|r| r.protocol()) == Some("HTTPS");
            let permanent =
                r.and_then(|r| r.status_code()) == Some(&RedirectActionStatusCodeEnum::Http301);
            let plain = r.is_none_or(|r| {
                r.host().is_none_or(|h| h == "#{host}")
                    && r.path().is_none_or(|p| p == "/#{path}")
                    && r.query().is_none_or(|q| q == "#{query}")
            });
            (!(https && permanent && plain)).then(|| {
                "its redirect is not a permanent redirect to HTTPS on the same host and path: \
                 infra declares only that one"
                    .to_string()
            })
        }
        other => Some(format!(
            "its default action is `{}`: infra declares forwards and redirects to HTTPS",
            other.map_or("?", |t| t.as_str())
        )),
    }
}

/// The default action to send.
fn action(d: &Resolved) -> Result<Action, ProviderError> {
    let a = d
        .get("default_action")
        .and_then(Value::as_map)
        .ok_or_else(|| {
            ProviderError::fatal(
                "MissingField",
                format!("{}: field `default_action` is required", d.address),
            )
        })?;
    let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    match s("type").as_deref() {
        Some("forward") => Ok(Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .set_target_group_arn(s("target_group_arn"))
            .build()),
        Some("redirect") => Ok(Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .set_protocol(s("protocol"))
                    .set_port(s("port"))
                    .status_code(RedirectActionStatusCodeEnum::from(
                        s("status_code").as_deref().unwrap_or("HTTP_301"),
                    ))
                    .build(),
            )
            .build()),
        other => Err(ProviderError::fatal(
            "InvalidAction",
            format!("{}: default action {other:?} is not supported", d.address),
        )),
    }
}

fn certificates(d: &Resolved) -> Option<Vec<Certificate>> {
    opt_str(d, "certificate_arn").map(|c| vec![Certificate::builder().certificate_arn(c).build()])
}

#[async_trait]
impl AwsKind for Listener {
    /// The listeners of the load balancers this pass handed over (DescribeListeners needs a
    /// load balancer: pages of 400 per load balancer), their tags 20 ARNs a call. A listener is
    /// named after its load balancer and port (`<lb>-<port>`) unless it has a `Name` tag; the
    /// filters apply to that name and its tags (the `vpc` filter already narrowed the load
    /// balancers). An unowned listener of a stack's load balancer is not listed.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let lbs = pass.load_balancers.clone();
        for (lb_arn, lb_name) in lbs {
            let mut pages =
                cx.c.elb_read
                    .describe_listeners()
                    .load_balancer_arn(&lb_arn)
                    .page_size(LISTENER_PAGE)
                    .into_paginator()
                    .send();
            while let Some(page) = pages.next().await {
                let page = match page.aws("DescribeListeners") {
                    Ok(p) => p,
                    // Deleted since it was listed: so are its listeners.
                    Err(e) if e.class == ErrorClass::NotFound => break,
                    Err(e) => return Err(e),
                };
                let items = page
                    .listeners()
                    .iter()
                    .filter_map(|l| Some((l.listener_arn()?.to_string(), l.clone())))
                    .collect();
                for (arn, l, tags) in unowned(cx, items).await? {
                    let name = match &tags.name {
                        Some(n) => n.clone(),
                        None => format!("{lb_name}-{}", l.port().unwrap_or_default()),
                    };
                    if !pass.matches(&name, &tags.all) {
                        continue;
                    }
                    if let Some(why) = inexpressible(&l) {
                        pass.inexpressible("ELBv2 listener", &arn, why);
                        continue;
                    }
                    let props = listener_props(&l, &arn, &tags.user);
                    pass.object(discovered(&LISTENER, &arn, Some(&name), props));
                }
            }
        }
        Ok(())
    }

    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let out =
            cx.c.elb_read
                .describe_listeners()
                .listener_arns(id)
                .send()
                .await
                .aws("DescribeListeners")
                .or_not_found()?;
        let Some(l) = out.as_ref().and_then(|o| o.listeners().first()) else {
            return Ok(None);
        };
        let Some(tags) = tags_any(cx, id).await? else {
            return Ok(None);
        };
        Ok(Some(observed_at(
            address,
            id,
            listener_props(l, id, &tags.user),
            &tags,
        )))
    }

    /// AddTags: `infra:stack` and `infra:id`; nothing else changes.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        adopt_elb(cx, current, to).await
    }

    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_listeners(cx, listings.load_balancers(cx).await?).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let lbs = stack_load_balancers(cx).await?;
        Ok(read_listeners(cx, &lbs)
            .await?
            .into_iter()
            .find(|o| &o.address == a))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.elb
                .create_listener()
                .load_balancer_arn(req_str(d, "load_balancer_arn")?)
                .protocol(ProtocolEnum::from(req_str(d, "protocol")?.as_str()))
                .port(req_i64(d, "port")? as i32)
                .set_certificates(certificates(d))
                .set_ssl_policy(opt_str(d, "ssl_policy"))
                .default_actions(action(d)?)
                .set_tags(Some(elb_tags(&all_tags(cx.stack, d))))
                .send()
                .await
                .aws("CreateListener")?;
        let arn = out
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or_else(|| crate::provider::common::empty("CreateListener"))?
            .to_string();
        Ok(observed_from(d, arn.clone(), &[("arn", Value::from(arn))]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let arn = current.id.as_str();
        let has = |f: &str| changed.iter().any(|c| c == f);
        if changed.iter().any(|c| c != "tags") {
            // Only what changed: AWS keeps the rest (and checks a certificate only when one is
            // sent). A new protocol takes its certificate and policy along.
            let protocol = has("protocol");
            let mut req = cx.c.elb.modify_listener().listener_arn(arn);
            if protocol || has("port") {
                req = req
                    .protocol(ProtocolEnum::from(req_str(d, "protocol")?.as_str()))
                    .port(req_i64(d, "port")? as i32);
            }
            if protocol || has("certificate_arn") {
                req = req.set_certificates(certificates(d));
            }
            if protocol || has("ssl_policy") {
                req = req.set_ssl_policy(opt_str(d, "ssl_policy"));
            }
            if has("default_action") {
                req = req.default_actions(action(d)?);
            }
            req.send().await.aws("ModifyListener")?;
        }
        update_tags(cx, arn, current, d).await?;
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        cx.c.elb
            .delete_listener()
            .listener_arn(&current.id)
            .send()
            .await
            .aws("DeleteListener")?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &["DuplicateListener"]
    }
}

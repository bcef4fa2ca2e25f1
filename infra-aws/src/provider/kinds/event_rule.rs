//! `aws_cloudwatch_event_rule`: an EventBridge rule on the default bus, with its targets.
//!
//! * **Read.** `ListRules` with the name prefix `<stack>-` (paginated by token: the SDK has no
//!   paginator for it; EventBridge has no tag filter), then `ListTagsForResource` and
//!   `ListTargetsByRule` for each rule of that prefix, keeping those whose tags say they are the
//!   stack's. Targets can't be tagged: they are the rule's.
//! * **Create.** `PutRule` creates *or overwrites* a rule of that name, so create first asks
//!   `DescribeRule`: a taken name is refused as `RuleAlreadyExists`, and the provider then finds
//!   the rule by its tags (converging the stack's own, after a lost response) or fails naming
//!   the stack (someone else's, never overwritten). Then `PutRule` with the tags, and
//!   `PutTargets`.
//! * **Update**: `PutRule` again (pattern, state, description), `PutTargets` /
//!   `RemoveTargets` for the targets that differ, `TagResource` / `UntagResource`.
//! * **Delete**: `RemoveTargets` (AWS refuses to delete a rule with targets), then
//!   `DeleteRule`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{Rule, RuleState, Tag, Target};
use futures::stream::{StreamExt, TryStreamExt};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::{map, Value};

use super::{AwsKind, Listings};
use crate::kinds::serverless::EVENT_RULE;
use crate::provider::common::{
    all_tags, empty, observed_from, opt_str, ownership, req_str, tag_diff, updated_from, Cx,
    Ownership, Props,
};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{
    cannot_adopt, discovered, observed_at, ownership_tags, Discovery, Unowned,
};

/// The `aws_cloudwatch_event_rule` handler.
pub(super) struct EventRule;

impl KindHandler for EventRule {
    fn schema(&self) -> &'static KindSchema {
        &EVENT_RULE
    }
}

/// At most this many rules are read at once.
const CONCURRENT_RULES: usize = 8;
/// The code of a create whose rule name is taken (PutRule itself would overwrite it).
const RULE_EXISTS: &str = "RuleAlreadyExists";

/// A rule of the stack with its tags and targets.
struct LiveRule {
    rule: Rule,
    owned: Ownership,
    targets: Vec<(String, String)>,
}

/// ListRules' largest page.
const RULE_PAGE: i32 = 100;

async fn list_rules(cx: &Cx<'_>, prefix: &str) -> Result<Vec<Rule>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            cx.c.events_read
                .list_rules()
                .name_prefix(prefix)
                .set_next_token(token.take())
                .send()
                .await
                .aws("ListRules")?;
        out.extend(page.rules().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// A rule's tags (ListTagsForResource); `None` when the rule is gone.
async fn tags_of(cx: &Cx<'_>, arn: &str) -> Result<Option<Vec<Tag>>, ProviderError> {
    Ok(cx
        .c
        .events_read
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .aws("ListTagsForResource")
        .or_not_found()?
        .map(|out| out.tags.unwrap_or_default()))
}

/// A rule's targets as `(id, arn)`; `None` when the rule is gone.
async fn targets_of(
    cx: &Cx<'_>,
    name: &str,
) -> Result<Option<Vec<(String, String)>>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let Some(page) =
            cx.c.events_read
                .list_targets_by_rule()
                .rule(name)
                .set_next_token(token.take())
                .send()
                .await
                .aws("ListTargetsByRule")
                .or_not_found()?
        else {
            return Ok(None);
        };
        out.extend(
            page.targets()
                .iter()
                .map(|t| (t.id().to_string(), t.arn().to_string())),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort();
    Ok(Some(out))
}

/// The stack's rules (or the one at `address`).
async fn read_rules(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<LiveRule>, ProviderError> {
    let prefix = match address {
        Some(a) => cx.physical_name(a),
        None => format!("{}-", cx.stack),
    };
    let rules = list_rules(cx, &prefix).await?;
    let live: Vec<Option<LiveRule>> = futures::stream::iter(rules)
        .map(|rule| async move {
            let (Some(arn), Some(name)) = (rule.arn(), rule.name()) else {
                return Ok(None);
            };
            let Some(tags) = tags_of(cx, arn).await? else {
                return Ok(None);
            };
            let Some(owned) = ownership(
                cx.stack,
                EVENT_RULE.kind,
                tags.iter().map(|t| (t.key(), t.value())),
            ) else {
                return Ok(None);
            };
            if address.is_some_and(|a| a != &owned.address) {
                return Ok(None);
            }
            let Some(targets) = targets_of(cx, name).await? else {
                return Ok(None);
            };
            Ok::<_, ProviderError>(Some(LiveRule {
                rule,
                owned,
                targets,
            }))
        })
        .buffered(CONCURRENT_RULES)
        .try_collect()
        .await?;
    Ok(live.into_iter().flatten().collect())
}

fn observe(l: &LiveRule) -> Option<Observed> {
    let name = l.rule.name()?;
    Some(rule_props(&l.rule, &l.targets, &l.owned.user).observed(l.owned.clone(), name))
}

/// A rule's properties in the builder's shape.
fn rule_props(rule: &Rule, targets: &[(String, String)], user: &BTreeMap<String, String>) -> Props {
    let pattern =
        rule.event_pattern()
            .map(|p| match serde_json::from_str::<serde_json::Value>(p) {
                Ok(json) => Value::from_json(json),
                Err(_) => Value::from(p),
            });
    let mut props = Props::default();
    props
        .set("event_pattern", pattern)
        .set("state", rule.state().map(|s| s.as_str()))
        .set("description", rule.description().filter(|d| !d.is_empty()))
        .set(
            "targets",
            Value::List(
                targets
                    .iter()
                    .map(|(id, arn)| map! { "id" => id.as_str(), "arn" => arn.as_str() })
                    .collect(),
            ),
        )
        .set("arn", rule.arn())
        .tags(user);
    props
}

fn declared_targets(d: &Resolved) -> BTreeMap<String, String> {
    d.get("targets")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let m = t.as_map()?;
            Some((
                m.get("id")?.as_str()?.to_string(),
                m.get("arn")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn pattern_json(d: &Resolved) -> Result<String, ProviderError> {
    d.get("event_pattern")
        .map(|p| p.to_json().to_string())
        .ok_or_else(|| {
            ProviderError::fatal(
                "MissingField",
                format!("{}: field `event_pattern` is required", d.address),
            )
        })
}

/// `PutRule`: creates (with the tags) or updates the rule; its ARN.
async fn put_rule(cx: &Cx<'_>, d: &Resolved, tags: bool) -> Result<Option<String>, ProviderError> {
    let tags = if tags {
        Some(
            all_tags(cx.stack, d)
                .into_iter()
                .map(|(k, v)| {
                    Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    } else {
        None
    };
    let out =
        cx.c.events
            .put_rule()
            .name(cx.physical_name(&d.address))
            .event_pattern(pattern_json(d)?)
            .state(RuleState::from(req_str(d, "state")?.as_str()))
            // An update keeps nothing it isn't given: send the description, even empty.
            .description(opt_str(d, "description").unwrap_or_default())
            .set_tags(tags)
            .send()
            .await
            .aws("PutRule")?;
    Ok(out.rule_arn().map(str::to_string))
}

/// Takes the rule's targets from `have` to what `d` declares.
async fn sync_targets(
    cx: &Cx<'_>,
    name: &str,
    have: &BTreeMap<String, String>,
    d: &Resolved,
) -> Result<(), ProviderError> {
    let want = declared_targets(d);
    let put: Vec<Target> = want
        .iter()
        .filter(|(id, arn)| have.get(*id) != Some(*arn))
        .map(|(id, arn)| {
            Target::builder()
                .id(id)
                .arn(arn)
                .build()
                .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    if !put.is_empty() {
        let out =
            cx.c.events
                .put_targets()
                .rule(name)
                .set_targets(Some(put))
                .send()
                .await
                .aws("PutTargets")?;
        if let Some(f) = out.failed_entries().first() {
            return Err(ProviderError::retryable(
                f.error_code().unwrap_or("PutTargetsFailed"),
                format!(
                    "PutTargets: target `{}`: {}",
                    f.target_id().unwrap_or_default(),
                    f.error_message().unwrap_or_default()
                ),
            ));
        }
    }
    let remove: Vec<String> = have
        .keys()
        .filter(|id| !want.contains_key(*id))
        .cloned()
        .collect();
    if !remove.is_empty() {
        cx.c.events
            .remove_targets()
            .rule(name)
            .set_ids(Some(remove))
            .send()
            .await
            .aws("RemoveTargets")?;
    }
    Ok(())
}

/// Why infra's builder can't declare this rule, if it can't.
fn inexpressible(rule: &Rule) -> Option<String> {
    if let Some(by) = rule.managed_by() {
        return Some(format!("it is managed by `{by}`"));
    }
    if rule.schedule_expression().is_some() {
        return Some(
            "it runs on a schedule: infra declares rules with an event pattern".to_string(),
        );
    }
    None
}

#[async_trait]
impl AwsKind for EventRule {
    /// Pages of 100 from ListRules on the default bus (by token: the SDK has no paginator), a
    /// ListTagsForResource and ListTargetsByRule per rule (8 rules at once). The name filter
    /// applies to the rule's name; the `vpc` filter keeps the rules targeting a function this
    /// pass handed over. Scheduled and service-managed rules are listed as inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut token: Option<String> = None;
        loop {
            let page =
                cx.c.events_read
                    .list_rules()
                    .limit(RULE_PAGE)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .aws("ListRules")?;
            let rules: Vec<Rule> = page
                .rules()
                .iter()
                .filter(|r| r.name().is_some_and(|n| pass.filter.name_matches(n)))
                .cloned()
                .collect();
            let read: Vec<Option<(Rule, Unowned, Vec<(String, String)>)>> =
                futures::stream::iter(rules)
                    .map(|rule| async move {
                        let (Some(arn), Some(name)) = (rule.arn(), rule.name()) else {
                            return Ok(None);
                        };
                        let Some(tags) = tags_of(cx, arn).await? else {
                            return Ok(None);
                        };
                        let Some(tags) = Unowned::of(tags.iter().map(|t| (t.key(), t.value())))
                        else {
                            return Ok(None);
                        };
                        let Some(targets) = targets_of(cx, name).await? else {
                            return Ok(None);
                        };
                        Ok::<_, ProviderError>(Some((rule, tags, targets)))
                    })
                    .buffered(CONCURRENT_RULES)
                    .try_collect()
                    .await?;
            for (rule, tags, targets) in read.into_iter().flatten() {
                let name = rule.name().unwrap_or_default();
                if !pass.matches(name, &tags.all)
                    || !pass.refers_to_seen(targets.iter().map(|(_, arn)| arn.as_str()))
                {
                    continue;
                }
                if let Some(why) = inexpressible(&rule) {
                    pass.inexpressible("EventBridge rule", name, why);
                    continue;
                }
                let props = rule_props(&rule, &targets, &tags.user);
                let mut found = discovered(
                    &EVENT_RULE,
                    name,
                    tags.name.as_deref().or(Some(name)),
                    props,
                );
                found.aliases.extend(rule.arn().map(str::to_string));
                pass.object(found);
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(())
    }

    /// DescribeRule, its tags and targets.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let Some(r) =
            cx.c.events_read
                .describe_rule()
                .name(id)
                .send()
                .await
                .aws("DescribeRule")
                .or_not_found()?
        else {
            return Ok(None);
        };
        let rule = Rule::builder()
            .set_name(r.name().map(str::to_string))
            .set_arn(r.arn().map(str::to_string))
            .set_event_pattern(r.event_pattern().map(str::to_string))
            .set_state(r.state().cloned())
            .set_description(r.description().map(str::to_string))
            .build();
        let Some(arn) = r.arn() else {
            return Ok(None);
        };
        let Some(tags) = tags_of(cx, arn).await? else {
            return Ok(None);
        };
        let tags = Unowned::parse(tags.iter().map(|t| (t.key(), t.value())));
        let Some(targets) = targets_of(cx, id).await? else {
            return Ok(None);
        };
        let props = rule_props(&rule, &targets, &tags.user);
        Ok(Some(observed_at(address, id, props, &tags)))
    }

    /// TagResource: `infra:stack` and `infra:id`. Refused for a rule whose name isn't
    /// `<stack>-…`: the stack's read lists its rules by that prefix (EventBridge has no tag
    /// filter), so it would never find the rule again.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        if !current.id.starts_with(&format!("{}-", cx.stack)) {
            return Err(cannot_adopt(
                EVENT_RULE.kind,
                &current.id,
                to,
                &format!(
                    "the stack's read finds its rules by the name prefix `{}-` (EventBridge \
                     has no tag filter) and a rule can't be renamed: declare a new rule \
                     instead, or adopt it into a stack named after its prefix",
                    cx.stack
                ),
            ));
        }
        let arn = current
            .props
            .get("arn")
            .and_then(Value::as_str)
            .unwrap_or(&current.id);
        let tags = ownership_tags(cx, to)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))?;
        cx.c.events
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("TagResource")?;
        Ok(Observed {
            address: to.clone(),
            ..current.clone()
        })
    }

    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        Ok(read_rules(cx, None)
            .await?
            .iter()
            .filter_map(observe)
            .collect())
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_rules(cx, Some(a)).await?.iter().find_map(observe))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = cx.physical_name(&d.address);
        let taken =
            cx.c.events_read
                .describe_rule()
                .name(&name)
                .send()
                .await
                .aws("DescribeRule")
                .or_not_found()?;
        if taken.is_some() {
            return Err(ProviderError::fatal(
                RULE_EXISTS,
                format!("an EventBridge rule named `{name}` exists"),
            ));
        }
        let arn = put_rule(cx, d, true)
            .await?
            .ok_or_else(|| empty("PutRule"))?;
        sync_targets(cx, &name, &BTreeMap::new(), d).await?;
        Ok(observed_from(d, name, &[("arn", Value::from(arn))]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let name = current.id.clone();
        if changed
            .iter()
            .any(|f| matches!(f.as_str(), "event_pattern" | "state" | "description"))
        {
            put_rule(cx, d, false).await?;
        }
        if changed.iter().any(|f| f == "targets") {
            let have = targets_of(cx, &name)
                .await?
                .unwrap_or_default()
                .into_iter()
                .collect();
            sync_targets(cx, &name, &have, d).await?;
        }
        let arn = current
            .props
            .get("arn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let diff = tag_diff(current, d);
        if !diff.set.is_empty() {
            let tags = diff
                .set
                .into_iter()
                .map(|(k, v)| {
                    Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            cx.c.events
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(tags))
                .send()
                .await
                .aws("TagResource")?;
        }
        if !diff.remove.is_empty() {
            cx.c.events
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(diff.remove))
                .send()
                .await
                .aws("UntagResource")?;
        }
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let name = &current.id;
        let Some(targets) = targets_of(cx, name).await? else {
            return Ok(());
        };
        if !targets.is_empty() {
            cx.c.events
                .remove_targets()
                .rule(name)
                .set_ids(Some(targets.into_iter().map(|(id, _)| id).collect()))
                .send()
                .await
                .aws("RemoveTargets")?;
        }
        cx.c.events
            .delete_rule()
            .name(name)
            .send()
            .await
            .aws("DeleteRule")?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[RULE_EXISTS]
    }
}

//! Import and adoption on the sandbox: objects made by hand (that belong to no stack) are
//! discovered, read under a declared address, and adopted, as the real providers do.

use std::collections::{BTreeMap, BTreeSet};

use super::journal::Entry;
use super::{SandboxObject, SandboxProvider};
use crate::dsl::{Address, KindSchema};
use crate::import::{Discovered, Found, ImportFilter};
use crate::provider::{Observed, OpContext, ProviderError};
use crate::value::Value;

impl SandboxProvider {
    /// Stores an object of `schema`'s kind that belongs to no stack, as if made by hand (with
    /// the provider's console or CLI), and remembers the kind for discovery. `props` are its
    /// fields in the form the kind's builder emits; a field holding another object's id is a
    /// reference to it. Returns its id.
    pub fn insert_unowned(
        &self,
        schema: &'static KindSchema,
        name: &str,
        props: BTreeMap<String, Value>,
    ) -> std::io::Result<String> {
        {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            if !known.iter().any(|k| k.kind == schema.kind) {
                known.push(schema);
            }
        }
        self.insert_foreign(schema.kind, name, props)
    }

    /// The schema of `kind`: one this sandbox serves, or one it was given an object of.
    fn schema_of(&self, kind: &str) -> Option<&'static KindSchema> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        self.kinds
            .iter()
            .flatten()
            .chain(known.iter())
            .find(|k| k.kind == kind)
            .copied()
    }

    pub(super) fn discover_objects(
        &self,
        filter: &ImportFilter,
        sink: &mut (dyn FnMut(Found) + Send),
    ) -> Result<(), ProviderError> {
        // The sandbox stands in for the real provider: `--vpc` narrows AWS objects only.
        if filter.vpc.is_some() && self.name != "aws" {
            return Err(ProviderError::fatal(
                "UnknownFilter",
                format!(
                    "provider `{}` has no VPCs: the VPC filter (--vpc) applies to aws only; \
                     narrow with --only aws, or by name or tag",
                    self.name
                ),
            ));
        }
        let objects: Vec<SandboxObject> = self
            .journal
            .with_state(|s| {
                Ok((
                    Vec::new(),
                    s.sorted(|o| o.stack.is_none()).cloned().collect(),
                ))
            })
            .map_err(Self::err)?;
        let ids: BTreeSet<&str> = objects.iter().map(|o| o.id.as_str()).collect();
        let in_vpc = |o: &SandboxObject| match &filter.vpc {
            None => true,
            Some(vpc) => o.id == *vpc || o.props.values().any(|v| refers_to(v, vpc)),
        };
        let chosen: Vec<&SandboxObject> = objects
            .iter()
            .filter(|o| filter.name_matches(&o.name) && in_vpc(o) && filter.tags_match(tags(o)))
            .collect();
        // Dependency order: an object after those whose ids its fields hold; ties by kind and
        // name (the journal's order is by id).
        let mut emitted: BTreeSet<&str> = BTreeSet::new();
        let mut pending: Vec<&SandboxObject> = chosen;
        pending.sort_by(|a, b| (&a.kind, &a.name, &a.id).cmp(&(&b.kind, &b.name, &b.id)));
        while !pending.is_empty() {
            let ready = pending.iter().position(|o| {
                let mut waits = false;
                for v in o.props.values() {
                    visit_strings(v, &mut |s| {
                        waits |= s != o.id
                            && ids.contains(s)
                            && !emitted.contains(s)
                            && pending.iter().any(|p| p.id == s);
                    });
                }
                !waits
            });
            // A cycle of references: the first one goes anyway.
            let o = pending.remove(ready.unwrap_or(0));
            emitted.insert(&o.id);
            sink(self.found(o));
        }
        Ok(())
    }

    fn found(&self, o: &SandboxObject) -> Found {
        let Some(schema) = self.schema_of(&o.kind) else {
            return Found::Inexpressible {
                what: format!("sandbox object of kind `{}`", o.kind),
                id: o.id.clone(),
                reason: format!("provider `{}` doesn't serve kind `{}`", self.name, o.kind),
            };
        };
        let props = o
            .props
            .iter()
            .filter(|(k, _)| !schema.has_output(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Found::Object(Discovered {
            schema,
            id: o.id.clone(),
            name: o.name.clone(),
            props,
            aliases: Vec::new(),
            notes: Vec::new(),
        })
    }

    pub(super) fn read_unowned_object(
        &self,
        kind: &'static KindSchema,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let found = self
            .journal
            .with_state(|s| Ok((Vec::new(), s.objects.get(id).cloned())))
            .map_err(Self::err)?;
        let Some(o) = found.filter(|o| o.kind == kind.kind) else {
            return Ok(None);
        };
        if let Some(stack) = &o.stack {
            return Err(ProviderError::fatal(
                "OwnedByAnotherStack",
                format!(
                    "{id} belongs to stack \"{stack}\" (as {}.{}): only an object that belongs \
                     to no stack can be adopted",
                    o.kind, o.name
                ),
            ));
        }
        Ok(Some(Observed {
            address: address.clone(),
            ..Self::observed(&o)
        }))
    }

    /// Writes the stack's ownership on the object; idempotent (an object already adopted as
    /// `to` by the stack is returned as it is).
    pub(super) fn adopt_object(
        &self,
        ctx: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        let adopted = self
            .journal
            .with_state(|s| {
                let Some(prev) = s.objects.get(&current.id).filter(|o| o.kind == to.kind()) else {
                    return Ok((Vec::new(), Err(None)));
                };
                match &prev.stack {
                    Some(stack) if *stack == ctx.stack && prev.name == to.name() => {
                        return Ok((Vec::new(), Ok(Self::observed(prev))));
                    }
                    Some(stack) => return Ok((Vec::new(), Err(Some(stack.clone())))),
                    None => {}
                }
                let object = SandboxObject {
                    stack: Some(ctx.stack.clone()),
                    name: to.name().to_string(),
                    ..prev.clone()
                };
                s.objects.insert(object.id.clone(), object.clone());
                let obs = Self::observed(&object);
                Ok((vec![Entry::Put { object }], Ok(obs)))
            })
            .map_err(Self::err)?;
        adopted.map_err(|owner| match owner {
            None => ProviderError::not_found("NotFound", format!("{} not found", current.id)),
            Some(stack) => ProviderError::fatal(
                "OwnedByAnotherStack",
                format!(
                    "{} belongs to stack \"{stack}\": it can't be adopted as {to}",
                    current.id
                ),
            ),
        })
    }
}

/// The object's tags (`tags`) or labels (`labels`), for the tag filter.
fn tags(o: &SandboxObject) -> Vec<(&str, &str)> {
    ["tags", "labels"]
        .iter()
        .filter_map(|f| match o.props.get(*f) {
            Some(Value::Map(m)) => Some(m),
            _ => None,
        })
        .flat_map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        })
        .collect()
}

fn refers_to(v: &Value, id: &str) -> bool {
    let mut found = false;
    visit_strings(v, &mut |s| found |= s == id);
    found
}

fn visit_strings<'v>(v: &'v Value, f: &mut dyn FnMut(&'v str)) {
    match v {
        Value::String(s) => f(s),
        Value::List(items) => items.iter().for_each(|i| visit_strings(i, f)),
        Value::Map(m) => m.values().for_each(|i| visit_strings(i, f)),
        _ => {}
    }
}

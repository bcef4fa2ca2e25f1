//! Which declaration a stack's objects were deployed from, so that a reconciler living on the
//! cluster converges only to the declaration it was deployed with and never fights a newer
//! deploy.
//!
//! A deploy records the [`digest`] of its declaration on one of the stack's own objects, the
//! *marker* (the deploy program puts it in a label of the controller's Swarm service): it is a
//! declared property like any other, so every apply of a declaration writes its own digest. A
//! watch loop given a [`Marker`] compares the value it declares there with the value it reads
//! back before each run and applies nothing when they differ: the objects were deployed from
//! another declaration (a newer deploy, whose controller is on its way), or the marker is gone
//! (the stack is being destroyed). The check is race-free because [`Engine::apply`] re-reads the
//! stack's objects under the lock and refuses a plan whose objects changed since it was made, so
//! a deploy that lands between the check and the apply is never reverted.
//!
//! [`Engine::apply`]: crate::engine::Engine::apply

use std::fmt;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::dsl::{Address, Stack};
use crate::engine::Planned;
use crate::value::Value;

/// The digest of a declaration: `sha256:` and 64 hex digits over the stack's name and every
/// resource's address, properties and options, in address order. Secrets enter by their digest
/// only (as in plans); fields whose drift is ignored (`ignore_changes`, set on create only) are
/// left out, since the reconciler never converges them (a Lambda function's local zip path
/// differs between the machine that deploys and the controller's image).
pub fn digest(stack: &Stack) -> String {
    let mut resources: Vec<_> = stack.resources().iter().collect();
    resources.sort_by(|a, b| a.address.cmp(&b.address));
    let resources: Vec<serde_json::Value> = resources
        .into_iter()
        .map(|r| {
            let props: serde_json::Map<String, serde_json::Value> = r
                .props
                .iter()
                .filter(|(k, _)| !r.options.ignore_changes.contains(*k))
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            let annotations: serde_json::Map<String, serde_json::Value> = r
                .options
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            json!({
                "address": r.address.to_string(),
                "props": props,
                "protect": r.options.protect,
                "create_before_destroy": r.options.create_before_destroy,
                "ignore_changes": r.options.ignore_changes,
                "depends_on": r.options.depends_on.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "annotations": annotations,
            })
        })
        .collect();
    let doc = json!({ "stack": stack.name(), "resources": resources });
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

/// Where a deploy records its declaration's digest: a property of one of the stack's resources
/// (`path` walks nested maps: `["labels", "infra-declaration"]`). See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The resource that carries the marker.
    pub address: Address,
    /// The property, then keys into nested maps.
    pub path: Vec<String>,
}

/// Why a run declined to converge: the marker read back is not the one this declaration writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotOwnDeclaration {
    /// The marker.
    pub marker: Marker,
    /// What this declaration records there.
    pub declared: Option<String>,
    /// What the marker holds now (`None`: the object or the property is missing).
    pub found: Option<String>,
}

impl fmt::Display for NotOwnDeclaration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mine = self.declared.as_deref().unwrap_or("(nothing)");
        match &self.found {
            Some(found) => write!(
                f,
                "the stack was deployed from declaration {found} (recorded on {}), not from this one ({mine}): a newer deploy, whose controller replaces this one, or a controller given other inputs; not converging",
                self.marker
            ),
            None => write!(
                f,
                "no declaration is recorded on {} (it is gone: the stack is being destroyed, or its controller was removed); not converging",
                self.marker
            ),
        }
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        for key in &self.path {
            write!(f, ".{key}")?;
        }
        Ok(())
    }
}

impl Marker {
    /// The marker at `path` of the resource at `address`.
    pub fn new(address: Address, path: &[&str]) -> Self {
        Marker {
            address,
            path: path.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn value_in<'a>(&self, props: &'a std::collections::BTreeMap<String, Value>) -> Option<String> {
        let (first, rest) = self.path.split_first()?;
        let mut value: &'a Value = props.get(first)?;
        for key in rest {
            value = value.as_map()?.get(key)?;
        }
        value.as_str().map(str::to_string)
    }

    /// `Ok` when the marker `planned` read back holds what its declaration records there (the
    /// stack's objects come from this declaration); else what was found.
    pub fn check(&self, planned: &Planned) -> Result<(), NotOwnDeclaration> {
        let declared = planned
            .graph()
            .get(&self.address)
            .and_then(|spec| self.value_in(&spec.props));
        let found = planned
            .observed()
            .resources
            .get(&self.address)
            .and_then(|o| self.value_in(&o.props));
        if declared.is_some() && declared == found {
            return Ok(());
        }
        Err(NotOwnDeclaration {
            marker: self.clone(),
            declared,
            found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::{KindSchema, Resource, ResourceSpec};

    static THING: KindSchema = KindSchema::new("test_thing", "test");
    struct Thing(ResourceSpec);
    impl Resource for Thing {
        const SCHEMA: &'static KindSchema = &THING;
        fn spec(&self) -> &ResourceSpec {
            &self.0
        }
        fn spec_mut(&mut self) -> &mut ResourceSpec {
            &mut self.0
        }
        fn into_spec(self) -> ResourceSpec {
            self.0
        }
    }
    fn thing(name: &str, size: i64) -> Thing {
        let mut s = ResourceSpec::new(&THING, name);
        s.set("size", size);
        Thing(s)
    }

    #[test]
    fn the_digest_follows_the_declaration_not_its_order_nor_ignored_fields() {
        let mut a = Stack::new("s");
        a.add(thing("x", 1));
        a.add(thing("y", 2));
        let mut b = Stack::new("s");
        b.add(thing("y", 2));
        b.add(thing("x", 1));
        assert_eq!(digest(&a), digest(&b), "declaration order plays no part");
        assert!(digest(&a).starts_with("sha256:") && digest(&a).len() == 7 + 64);

        let mut c = Stack::new("s");
        c.add(thing("x", 1));
        c.add(thing("y", 3));
        assert_ne!(digest(&a), digest(&c), "a changed property changes it");
        let mut renamed = a.clone();
        renamed.rename("t");
        assert_ne!(
            digest(&a),
            digest(&renamed),
            "the stack's name is part of it"
        );

        let ignored = |path: &str| {
            let mut x = thing("x", 1);
            x.0.set("path", path);
            x.0.options.ignore_changes.insert("path".into());
            let mut s = Stack::new("s");
            s.add(x);
            s.add(thing("y", 2));
            digest(&s)
        };
        assert_eq!(ignored("/here"), ignored("/there"));
    }
}

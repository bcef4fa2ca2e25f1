//! One list of a provider's kind handlers, looked up by kind name.
//!
//! A provider crate writes each kind as one handler (a type implementing the provider's own
//! handler trait: read the kind's owned objects in one batched call, create, update, delete,
//! find one after a lost response), and lists the handlers once. Dispatch is a lookup in that
//! list, never a `match` on kind names, and the list is also what the provider answers to
//! [`Provider::kinds`](crate::provider::Provider::kinds). Adding a kind is a new module and
//! one line in the list.
//!
//! ```
//! use infra_core::dsl::KindSchema;
//! use infra_core::registry::{KindHandler, Registry};
//!
//! static DISK: KindSchema = KindSchema::new("demo_disk", "demo");
//!
//! // The provider's own handler trait extends `KindHandler` with its operations.
//! trait DemoKind: KindHandler + Send + Sync {
//!     fn size_field(&self) -> &'static str;
//! }
//! struct Disk;
//! impl KindHandler for Disk {
//!     fn schema(&self) -> &'static KindSchema { &DISK }
//! }
//! impl DemoKind for Disk {
//!     fn size_field(&self) -> &'static str { "size_gb" }
//! }
//!
//! let kinds: Registry<dyn DemoKind> = Registry::new("demo", vec![Box::new(Disk)]);
//! assert_eq!(kinds.get("demo_disk").unwrap().size_field(), "size_gb");
//! assert_eq!(kinds.get("demo_volume").err().unwrap().code, "Unsupported");
//! assert_eq!(kinds.kinds()[0].kind, "demo_disk");
//! ```

use std::collections::BTreeMap;

use crate::dsl::KindSchema;
use crate::provider::ProviderError;

/// What every kind handler tells about itself: the kind it serves.
pub trait KindHandler {
    /// The kind's schema (its name, provider, fields).
    fn schema(&self) -> &'static KindSchema;
}

/// A provider's handlers by kind name. See the [module docs](self).
pub struct Registry<H: ?Sized> {
    provider: &'static str,
    by_kind: BTreeMap<&'static str, Box<H>>,
}

impl<H: ?Sized + KindHandler> Registry<H> {
    /// The registry of `provider`'s handlers.
    ///
    /// # Panics
    /// When two handlers serve one kind, or a handler's kind names another provider: both are
    /// mistakes in the provider's list, caught by its first test.
    pub fn new(provider: &'static str, handlers: Vec<Box<H>>) -> Self {
        let mut by_kind = BTreeMap::new();
        for h in handlers {
            let schema = h.schema();
            assert_eq!(
                schema.provider, provider,
                "kind `{}` names provider `{}`, but is registered with provider `{provider}`",
                schema.kind, schema.provider
            );
            let kind = schema.kind;
            assert!(
                by_kind.insert(kind, h).is_none(),
                "two handlers registered for kind `{kind}`"
            );
        }
        Registry { provider, by_kind }
    }

    /// The handler of `kind`, or an `Unsupported` error naming the provider.
    pub fn get(&self, kind: &str) -> Result<&H, ProviderError> {
        self.by_kind.get(kind).map(|h| &**h).ok_or_else(|| {
            ProviderError::fatal(
                "Unsupported",
                format!("the {} provider has no kind `{kind}`", self.provider),
            )
        })
    }

    /// Every handler, by kind name.
    pub fn iter(&self) -> impl Iterator<Item = &H> {
        self.by_kind.values().map(|h| &**h)
    }

    /// The kinds served, by name.
    pub fn kinds(&self) -> Vec<&'static KindSchema> {
        self.iter().map(|h| h.schema()).collect()
    }
}

impl<H: ?Sized> std::fmt::Debug for Registry<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("provider", &self.provider)
            .field("kinds", &self.by_kind.keys().collect::<Vec<_>>())
            .finish()
    }
}

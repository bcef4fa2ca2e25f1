//! Import and adoption in the engine: the objects of declared adoptions read for a plan,
//! discovery into a [`ModuleWriter`], and the apply that only adopts.

use std::collections::BTreeSet;
use std::io::Write;

use super::{Engine, Error, Planned};
use crate::dsl::Adoption;
use crate::graph::Graph;
use crate::import::{Found, ImportFilter, ModuleWriter};
use crate::plan::{Action, ObservedState};
use crate::reconcile::{ApplyObserver, ApplyReport};
use crate::validate::{Problem, ValidationErrors};

/// How many objects of declared adoptions are read at once.
const ADOPTION_READS: usize = 10;

impl Engine {
    /// Reads the object of each in-scope declared adoption whose address owns no object yet
    /// ([`Provider::read_unowned`](crate::provider::Provider::read_unowned)) and observes it
    /// at that address. An adoption whose object is missing, already owned by this stack at
    /// another address, or of a kind its provider can't adopt
    /// ([`Provider::adoption_refusal`](crate::provider::Provider::adoption_refusal)) is a
    /// problem; all of them are reported at once, before anything is
    /// changed.
    pub(super) async fn read_adoptions(
        &self,
        graph: &Graph,
        scope: &[String],
        observed: &mut ObservedState,
    ) -> Result<(), Error> {
        let mut problems = Vec::new();
        let mut wanted: Vec<(&Adoption, &str)> = Vec::new();
        for a in graph.adoptions() {
            let Some(spec) = graph.get(&a.address) else {
                continue;
            };
            let provider = spec.schema.provider;
            if !scope.iter().any(|s| s == provider) || observed.resources.contains_key(&a.address) {
                continue;
            }
            let owned_at = observed.resources.iter().find(|(at, o)| {
                o.id == a.id && observed.provider_of.get(*at).map(String::as_str) == Some(provider)
            });
            if let Some((at, _)) = owned_at {
                problems.push(Problem::new(
                    &a.address,
                    "adopt",
                    format!(
                        "{} adopts {}, but the stack owns that object already, as {at}: declare \
                         a move (stack.moved) from {at} instead",
                        a.address, a.id
                    ),
                ));
                continue;
            }
            if let Some(why) = self.providers[provider].adoption_refusal(spec.schema) {
                problems.push(Problem::new(
                    &a.address,
                    "adopt",
                    format!(
                        "{} adopts {}, but provider `{provider}` can't adopt a {}: {why}",
                        a.address, a.id, spec.schema.kind
                    ),
                ));
                continue;
            }
            wanted.push((a, provider));
        }
        // A bounded number at a time, in declaration order.
        let mut reads = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(ADOPTION_READS) {
            let mut calls = Vec::with_capacity(chunk.len());
            for &(a, provider) in chunk {
                let schema = graph.get(&a.address).map(|s| s.schema);
                let p = &self.providers[provider];
                calls.push(async move {
                    match schema {
                        Some(schema) => p.read_unowned(schema, &a.id, &a.address).await,
                        None => Ok(None),
                    }
                });
            }
            let results = futures::future::join_all(calls).await;
            reads.extend(
                chunk
                    .iter()
                    .zip(results)
                    .map(|(&(a, provider), r)| (a, provider, r)),
            );
        }
        for (a, provider, r) in reads {
            match r {
                Err(error) => {
                    return Err(Error::Adopt {
                        address: a.address.clone(),
                        id: a.id.clone(),
                        provider: provider.to_string(),
                        error: Box::new(error),
                    })
                }
                Ok(None) => problems.push(Problem::new(
                    &a.address,
                    "adopt",
                    format!(
                        "{} adopts {}, but provider `{provider}` has no {} with that id: check \
                         the id, or remove the adoption to create a new object",
                        a.address,
                        a.id,
                        a.address.kind()
                    ),
                )),
                Ok(Some(mut o)) => {
                    o.address = a.address.clone();
                    observed
                        .provider_of
                        .insert(a.address.clone(), provider.to_string());
                    observed.resources.insert(a.address.clone(), o);
                    observed.adopted.insert(a.address.clone(), a.id.clone());
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.sort();
        Err(Error::Validation(ValidationErrors {
            stack: graph.stack().to_string(),
            problems,
        }))
    }

    /// Import: asks each in-scope provider (`only`, empty for all; in name order) for the
    /// objects of its kinds that belong to no stack, narrowed by `filter`
    /// ([`Provider::discover`](crate::provider::Provider::discover)), and writes each to
    /// `writer` as it comes. The caller [`finish`](ModuleWriter::finish)es the module.
    pub async fn import<W: Write + Send>(
        &self,
        only: &BTreeSet<String>,
        filter: &ImportFilter,
        writer: &mut ModuleWriter<W>,
    ) -> Result<(), Error> {
        for name in self.scope(only)? {
            let mut failed: Option<std::io::Error> = None;
            let mut sink = |found: Found| {
                if failed.is_none() {
                    if let Err(e) = writer.found(found) {
                        failed = Some(e);
                    }
                }
            };
            let discovered = self.providers[&name].discover(filter, &mut sink).await;
            if let Some(e) = failed {
                return Err(Error::ImportWrite(e));
            }
            discovered.map_err(|error| Error::Discover {
                provider: name.clone(),
                error,
            })?;
        }
        Ok(())
    }

    /// The changes of `planned` that are not adoptions alone (an update that also adopts
    /// included), as `address (action)`: what [`Engine::adopt`] refuses.
    pub fn not_adoptions(planned: &Planned) -> Vec<String> {
        planned
            .plan
            .actionable()
            .filter(|c| c.action != Action::Adopt)
            .map(|c| {
                let what = match (c.action, &c.adopted) {
                    (Action::Update, Some(_)) => "adopted and updated in place".to_string(),
                    (action, _) => format!("{action:?}").to_lowercase(),
                };
                format!("{} ({what})", c.address)
            })
            .collect()
    }

    /// Applies a plan that only adopts: the stack's ownership written on each adopted object,
    /// nothing else. A plan that holds anything else (a create, an update, an adoption that
    /// also updates, a deletion, …) is refused with [`Error::NotOnlyAdoptions`], listing
    /// those changes, and nothing is applied.
    pub async fn adopt(
        &self,
        planned: &Planned,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, Error> {
        let others = Self::not_adoptions(planned);
        if !others.is_empty() {
            return Err(Error::NotOnlyAdoptions(others));
        }
        self.apply(planned, observer).await
    }
}

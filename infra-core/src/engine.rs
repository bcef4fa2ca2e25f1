//! The library API for tooling: validate, read, plan, apply, destroy. The deploy program is a
//! thin layer over these functions.
//!
//! ```no_run
//! # async fn demo(stack: infra_core::dsl::Stack) -> Result<(), infra_core::engine::Error> {
//! use infra_core::engine::Engine;
//! use infra_core::plan::PlanOptions;
//! use infra_core::sandbox::SandboxProvider;
//!
//! let engine = Engine::new().with_provider(SandboxProvider::open(".infra/sandbox", "aws").unwrap());
//! let planned = engine.plan(&stack, &PlanOptions::default()).await?;
//! println!("{}", infra_core::render::plan_text(&planned.plan));
//! let report = engine.apply(&planned, &infra_core::reconcile::NoObserver).await?;
//! assert!(report.is_success());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dsl::{Address, Stack};
use crate::graph::Graph;
use crate::plan::saved::{Refusal, SavedPhase, SavedPlan};
use crate::plan::{self, ObservedState, Plan, PlanOptions, ReadStats};
use crate::policy::{self, PolicyRule, Rules};
use crate::provider::{LockError, LockInfo, Observed, Provider, ProviderError, Resolved};
use crate::reconcile::{self, ApplyObserver, ApplyOptions, ApplyReport, Providers, ReconcileError};
use crate::validate::{Problem, ValidationErrors};

mod adopt;

/// Everything that can stop a plan or an apply before or while it runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stack is invalid (including kinds that no registered provider serves); nothing was
    /// read or changed.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// The run was narrowed to a provider that isn't registered.
    #[error("unknown provider `{provider}` in the run's scope (registered: {registered})")]
    UnknownProvider {
        /// The provider asked for.
        provider: String,
        /// The registered providers, comma-separated.
        registered: String,
    },
    /// A provider's read failed; nothing was changed.
    #[error("reading the stack's objects from provider `{provider}` failed: {error}")]
    Read {
        /// The provider.
        provider: String,
        /// Its error.
        error: ProviderError,
    },
    /// A data source lookup failed; nothing was changed.
    #[error("{address}: looking up the data source failed: {error}")]
    Lookup {
        /// The data source.
        address: Address,
        /// The provider's error.
        error: ProviderError,
    },
    /// The plan can't be applied.
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// Reading the object of a declared adoption failed; nothing was changed.
    #[error(
        "{address}: reading {id}, the object it adopts, from provider `{provider}` failed: {error}"
    )]
    Adopt {
        /// The adopting resource.
        address: Address,
        /// The object's id.
        id: String,
        /// The provider.
        provider: String,
        /// Its error.
        error: Box<ProviderError>,
    },
    /// Discovering the objects to import failed in a provider ([`Engine::import`]).
    #[error(
        "discovering the objects that belong to no stack in provider `{provider}` failed: {error}"
    )]
    Discover {
        /// The provider.
        provider: String,
        /// Its error.
        error: ProviderError,
    },
    /// Writing the imported module failed ([`Engine::import`]).
    #[error("writing the imported module failed: {0}")]
    ImportWrite(std::io::Error),
    /// An adopt-only apply ([`Engine::adopt`]) was given a plan that does more than adopt.
    #[error("the plan does more than adopt objects, so nothing was applied: {}", .0.join("; "))]
    NotOnlyAdoptions(Vec<String>),
    /// Another run holds the stack's lock (past the lock timeout, or a holder known to be
    /// gone: [`LockInfo::is_stale`]); nothing was changed. [`Engine::force_unlock`] breaks it.
    #[error("stack \"{stack}\" is locked by {holder}")]
    Locked {
        /// The stack.
        stack: String,
        /// Who holds it, since when, and whether that process is known to be gone.
        holder: LockInfo,
    },
    /// The stack's lock could not be read or written in a provider; nothing was changed.
    #[error("taking the stack's lock in provider `{provider}` failed: {error}")]
    LockFailed {
        /// The provider.
        provider: String,
        /// Its error.
        error: ProviderError,
    },
    /// Breaking the lock failed in a provider.
    #[error("breaking the stack's lock in provider `{provider}` failed: {error}")]
    ForceUnlock {
        /// The provider.
        provider: String,
        /// Its error.
        error: ProviderError,
    },
    /// What the providers hold changed between plan and apply.
    #[error("the stack's objects changed since this plan was made ({0}); plan again")]
    StalePlan(String),
    /// A saved plan is not applied: what differs from what it was made from.
    #[error(transparent)]
    SavedPlan(#[from] Refusal),
    /// A provider could not say what it targets (for a saved plan).
    #[error("asking provider `{provider}` which target it works on failed: {error}")]
    Target {
        /// The provider.
        provider: String,
        /// Its error.
        error: ProviderError,
    },
}

/// A plan together with what it was computed from (needed to apply it).
#[derive(Clone, Debug)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    graph: Graph,
    observed: ObservedState,
}

impl Planned {
    /// The validated graph the plan came from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// What the providers read.
    pub fn observed(&self) -> &ObservedState {
        &self.observed
    }
}

/// Providers plus apply options. See the [module docs](self).
#[derive(Clone, Default)]
pub struct Engine {
    providers: Providers,
    rules: Rules,
    options: ApplyOptions,
    lock_timeout: Duration,
}

impl Engine {
    /// An engine with no providers.
    pub fn new() -> Self {
        Engine::default()
    }

    /// Registers a provider (it serves every kind whose schema names it).
    pub fn with_provider(self, provider: impl Provider + 'static) -> Self {
        self.with_provider_arc(Arc::new(provider))
    }

    /// Registers a shared provider.
    pub fn with_provider_arc(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(provider.name().to_string(), provider);
        self
    }

    /// Adds policy rules, checked on every plan.
    pub fn with_rules(mut self, rules: impl IntoIterator<Item = Arc<dyn PolicyRule>>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Sets the apply options (concurrency, retries).
    pub fn with_options(mut self, options: ApplyOptions) -> Self {
        self.options = options;
        self
    }

    /// How long `apply` waits for a lock held by another run before failing (default: 0). A
    /// holder known to be gone (a killed process on this host) is not waited for.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The registered providers' names, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.providers.keys().cloned().collect();
        names.sort();
        names
    }

    /// A registered provider.
    pub fn provider(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    fn scope(&self, only: &BTreeSet<String>) -> Result<Vec<String>, Error> {
        let names = self.provider_names();
        for o in only {
            if !self.providers.contains_key(o) {
                return Err(Error::UnknownProvider {
                    provider: o.clone(),
                    registered: names.join(", "),
                });
            }
        }
        Ok(names
            .into_iter()
            .filter(|n| only.is_empty() || only.contains(n))
            .collect())
    }

    /// Validates the stack without calling any API: the graph's checks, every in-scope kind
    /// against the providers that serve it ([`Provider::kinds`]), and the in-scope providers'
    /// [preflight](Provider::preflight) checks against their configuration (the AWS region, …),
    /// every problem at once.
    pub fn validate(&self, stack: &Stack, only: &BTreeSet<String>) -> Result<Graph, Error> {
        self.validate_built(stack, Graph::build(stack), only)
    }

    /// [`Engine::validate`] given what [`Graph::build`] of the same `stack` returned, for a
    /// caller that has built the graph already (the deploy program checks a stack before it
    /// contacts any endpoint): the graph's checks are not made again.
    pub fn validate_built(
        &self,
        stack: &Stack,
        built: Result<Graph, ValidationErrors>,
        only: &BTreeSet<String>,
    ) -> Result<Graph, Error> {
        let scope = self.scope(only)?;
        let mut problems: Vec<_> = scope
            .iter()
            .flat_map(|name| self.providers[name].preflight(stack))
            .collect();
        problems.extend(self.unserved_kinds(stack, only));
        if let Ok(graph) = &built {
            assert!(
                graph.stack() == stack.name() && graph.len() == stack.len(),
                "validate_built: the graph is not the stack's"
            );
        }
        match built {
            Ok(graph) if problems.is_empty() => return Ok(graph),
            Ok(_) => {}
            Err(e) => problems.extend(e.problems),
        }
        problems.sort();
        problems.dedup();
        Err(Error::Validation(ValidationErrors {
            stack: stack.name().to_string(),
            problems,
        }))
    }

    /// A problem for each in-scope resource whose kind no registered provider serves: its
    /// provider isn't registered, or doesn't list the kind.
    fn unserved_kinds(&self, stack: &Stack, only: &BTreeSet<String>) -> Vec<Problem> {
        let registered = || match self.provider_names() {
            names if names.is_empty() => "no provider is registered".to_string(),
            names => format!("registered: {}", names.join(", ")),
        };
        let served: BTreeMap<&str, Option<Vec<&'static str>>> = self
            .providers
            .iter()
            .map(|(name, p)| {
                (
                    name.as_str(),
                    p.kinds().map(|k| k.iter().map(|s| s.kind).collect()),
                )
            })
            .collect();
        stack
            .resources()
            .iter()
            .filter(|r| only.is_empty() || only.contains(r.schema.provider))
            .filter_map(|r| {
                let kind = r.schema.kind;
                let provider = r.schema.provider;
                let message = match served.get(provider) {
                    None => format!(
                        "kind `{kind}` needs provider `{provider}`, which is not registered ({})",
                        registered()
                    ),
                    Some(Some(kinds)) if !kinds.contains(&kind) => format!(
                        "provider `{provider}` does not serve kind `{kind}` (it serves {}); {}",
                        kinds.join(", "),
                        registered()
                    ),
                    Some(_) => return None,
                };
                Some(Problem::new(&r.address, "kind", message))
            })
            .collect()
    }

    /// Validates the stack (before any provider is called; see [`Engine::validate`]), reads
    /// what the in-scope providers own, and plans.
    pub async fn plan(&self, stack: &Stack, opts: &PlanOptions) -> Result<Planned, Error> {
        self.plan_built(stack, Graph::build(stack), opts).await
    }

    /// [`Engine::plan`] given what [`Graph::build`] of the same `stack` returned (see
    /// [`Engine::validate_built`]).
    pub async fn plan_built(
        &self,
        stack: &Stack,
        built: Result<Graph, ValidationErrors>,
        opts: &PlanOptions,
    ) -> Result<Planned, Error> {
        let graph = self.validate_built(stack, built, &opts.only)?;
        let scope = self.scope(&opts.only)?;
        let observed = self.read(&graph, &scope, opts.destroy).await?;
        let mut plan = plan::compute(&graph, &observed, &scope, opts);
        plan.policy = policy::evaluate(&graph, &self.rules);
        Ok(Planned {
            plan,
            graph,
            observed,
        })
    }

    /// Each in-scope provider's [target](Provider::target): the account, cluster or file it works on.
    pub async fn targets(
        &self,
        only: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Option<String>>, Error> {
        let mut out = BTreeMap::new();
        for name in self.scope(only)? {
            let target = self.providers[&name]
                .target()
                .await
                .map_err(|error| Error::Target {
                    provider: name.clone(),
                    error,
                })?;
            out.insert(name, target);
        }
        Ok(out)
    }

    /// [`Engine::plan`], and the plan recorded with what it was computed from (the objects read,
    /// the targets, the options): one phase of a [saved plan](crate::plan::saved).
    pub async fn plan_to_save(
        &self,
        stack: &Stack,
        opts: &PlanOptions,
    ) -> Result<(Planned, SavedPhase), Error> {
        let targets = self.targets(&opts.only).await?;
        let planned = self.plan(stack, opts).await?;
        let phase = SavedPhase::new(&planned.plan, &planned.observed, targets, opts);
        Ok((planned, phase))
    }

    /// Plans a saved phase again from `stack` (whose declaration the caller has checked with
    /// [`SavedPlan::check_declaration`](crate::plan::saved::SavedPlan::check_declaration)) and
    /// returns it, ready for [`Engine::apply`], only when the providers' targets and every object
    /// read are those recorded, so that it is the saved plan operation for operation; otherwise
    /// [`Error::SavedPlan`] names what differs. Nothing is changed either way.
    pub async fn replan_saved(&self, stack: &Stack, phase: &SavedPhase) -> Result<Planned, Error> {
        let opts = phase.options();
        let targets = self.targets(&opts.only).await?;
        phase.check_targets(&targets)?;
        let planned = self.plan(stack, &opts).await?;
        phase.check_replan(&planned.plan, &planned.observed)?;
        Ok(planned)
    }

    /// Checks a saved plan against the declaration given now (`stack`, and the run's `context`:
    /// see [`SavedPlan::check_declaration`]) and plans each of its phases again
    /// ([`Engine::replan_saved`]): the plans to [apply](Engine::apply), phase by phase, each the
    /// saved one operation for operation. Every phase is checked before any is returned, so a
    /// refusal leaves everything untouched.
    pub async fn verify_saved(
        &self,
        stack: &Stack,
        saved: &SavedPlan,
        context: &BTreeMap<String, String>,
    ) -> Result<Vec<Planned>, Error> {
        saved.check_declaration(stack, context)?;
        let mut planned = Vec::with_capacity(saved.phases.len());
        for phase in &saved.phases {
            planned.push(self.replan_saved(stack, phase).await?);
        }
        Ok(planned)
    }

    /// Reads what the in-scope providers own, re-keys declared moves, reads the objects of
    /// declared adoptions (unless destroying: a destroy plan deletes only what the stack owns),
    /// and looks up the data sources.
    async fn read(
        &self,
        graph: &Graph,
        scope: &[String],
        destroy: bool,
    ) -> Result<ObservedState, Error> {
        let reads = futures::future::join_all(scope.iter().map(|name| {
            let p = &self.providers[name];
            async move {
                let started = Instant::now();
                let r = p.read(graph.stack()).await;
                tracing::info!(provider = %name, elapsed_ms = started.elapsed().as_millis() as u64, "read the stack's objects");
                (name.clone(), r)
            }
        }))
        .await;
        let mut observed = ObservedState::default();
        let mut objects: Vec<(usize, Observed)> = Vec::new();
        for (p, (name, r)) in reads.into_iter().enumerate() {
            let r = r.map_err(|error| Error::Read {
                provider: name.clone(),
                error,
            })?;
            observed.reads.push(ReadStats {
                provider: name,
                resources: r.resources.len(),
                api_calls: r.api_calls,
            });
            objects.extend(r.resources.into_iter().map(|o| (p, o)));
        }
        // Both maps built at once from the objects sorted by address (stable: of two objects
        // at one address, the later provider's is kept, as inserting them in turn would),
        // instead of two searches per object.
        objects.sort_by(|a, b| a.1.address.cmp(&b.1.address));
        observed.provider_of = objects
            .iter()
            .map(|(p, o)| (o.address.clone(), observed.reads[*p].provider.clone()))
            .collect();
        observed.resources = objects
            .into_iter()
            .map(|(_, o)| (o.address.clone(), o))
            .collect();
        // Declared moves: objects owned at an old address are the new address's from here on.
        let problems = plan::apply_moves(graph, &mut observed);
        if !problems.is_empty() {
            return Err(Error::Validation(ValidationErrors {
                stack: graph.stack().to_string(),
                problems,
            }));
        }
        // Declared adoptions: objects that belong to no stack, observed at their addresses.
        if !destroy {
            self.read_adoptions(graph, scope, &mut observed).await?;
        }
        // Data sources: looked up now, their outputs feed the plan like any other object's.
        for spec in graph
            .in_order()
            .filter(|r| r.schema.data_source && scope.iter().any(|s| s == r.schema.provider))
        {
            let props = spec
                .props
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.resolve(&|r| {
                            observed
                                .resources
                                .get(&r.address)
                                .and_then(|o| o.output(&r.attribute))
                        }),
                    )
                })
                .collect();
            let resolved = Resolved {
                address: spec.address.clone(),
                schema: spec.schema,
                props,
                protect: false,
            };
            let found = self.providers[spec.schema.provider]
                .lookup(graph.stack(), &resolved)
                .await
                .map_err(|error| Error::Lookup {
                    address: spec.address.clone(),
                    error,
                })?;
            observed.resources.insert(spec.address.clone(), found);
        }
        Ok(observed)
    }

    /// Applies a plan under the stack's lock. If the providers' objects changed since the plan
    /// was made (another run got there first), nothing is done: the report is empty when the
    /// objects now match the declaration (the other run did this plan's work), and
    /// [`Error::StalePlan`] says so otherwise.
    pub async fn apply(
        &self,
        planned: &Planned,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, Error> {
        let blockers = planned.plan.blockers();
        if !blockers.is_empty() {
            return Err(ReconcileError::Blocked(blockers).into());
        }
        let scope = planned.plan.providers.clone();
        let (holder, waited_for) = self
            .lock(
                &planned.plan.stack,
                &scope,
                if planned.plan.destroy {
                    "destroy"
                } else {
                    "apply"
                },
            )
            .await?;
        let providers = self.scoped(&scope);
        let result = async {
            // Who applies (for the audit trail; an STS call on AWS, once per provider) is asked
            // while the objects are read again, not after.
            let (now, actor) = futures::join!(
                self.read(&planned.graph, &scope, planned.plan.destroy),
                crate::audit::actor_for(&providers)
            );
            let now = now?;
            if let Some(diff) = first_difference(&planned.observed, &now) {
                // Another run changed the objects since this plan was made (typically the one
                // whose lock this run waited for). If they now match the declaration, what this
                // plan was to do is done: nothing to apply. Otherwise the plan is stale.
                let opts = PlanOptions {
                    destroy: planned.plan.destroy,
                    only: scope.iter().cloned().collect(),
                    ..PlanOptions::default()
                };
                if plan::compute(&planned.graph, &now, &scope, &opts).is_empty() {
                    tracing::warn!(stack = %planned.plan.stack, "the stack's objects changed since this plan was made ({diff}) and now match the declaration: nothing left to do");
                    return Ok(ApplyReport {
                        stack: planned.plan.stack.clone(),
                        outcomes: Vec::new(),
                        api_calls: BTreeMap::new(),
                        duration_ms: 0,
                    });
                }
                return Err(Error::StalePlan(match waited_for {
                    Some(h) => format!("{diff}; this run waited for the lock held by {}", h.holder),
                    None => diff,
                }));
            }
            for entry in crate::audit::suppressions(&planned.plan, &actor) {
                entry.trace();
                observer.audit(&entry);
            }
            Ok(reconcile::apply(
                &planned.plan,
                &planned.graph,
                &planned.observed,
                &providers,
                &self.options,
                observer,
            )
            .await?)
        }
        .await;
        self.unlock(&planned.plan.stack, &scope, &holder).await;
        result
    }

    fn scoped(&self, scope: &[String]) -> Providers {
        self.providers
            .iter()
            .filter(|(n, _)| scope.contains(n))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }

    /// Takes the lock in every provider of `scope`: this run's holder id, and the holder it
    /// waited for, if it did.
    async fn lock(
        &self,
        stack: &str,
        scope: &[String],
        operation: &str,
    ) -> Result<(String, Option<LockInfo>), Error> {
        let info = LockInfo::for_this_process(operation);
        let deadline = Instant::now() + self.lock_timeout;
        let mut taken: Vec<&String> = Vec::new();
        let mut waited_for = None;
        for name in scope {
            loop {
                match self.providers[name].lock(stack, &info).await {
                    Ok(()) => {
                        taken.push(name);
                        break;
                    }
                    // Waiting for a holder known to be gone is pointless: say so at once.
                    Err(LockError::Held { holder, .. })
                        if Instant::now() < deadline && holder.is_stale() != Some(true) =>
                    {
                        waited_for = Some(holder);
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => {
                        for t in taken {
                            let _ = self.providers[t].unlock(stack, &info.holder).await;
                        }
                        return Err(match e {
                            LockError::Held { stack, holder } => Error::Locked { stack, holder },
                            LockError::Failed { error, .. } => Error::LockFailed {
                                provider: name.clone(),
                                error,
                            },
                        });
                    }
                }
            }
        }
        Ok((info.holder, waited_for))
    }

    async fn unlock(&self, stack: &str, scope: &[String], holder: &str) {
        for name in scope {
            if let Err(e) = self.providers[name].unlock(stack, holder).await {
                tracing::warn!(provider = %name, error = %e, "could not release the stack lock");
            }
        }
    }

    /// Who acts through this engine, for the audit trail: this process and the identity each
    /// provider of the scope (`only`, empty for all) acts as.
    pub async fn actor(&self, only: &BTreeSet<String>) -> Result<crate::audit::Actor, Error> {
        let scope = self.scope(only)?;
        Ok(crate::audit::actor_for(&self.scoped(&scope)).await)
    }

    /// Breaks the stack's lock in every in-scope provider, whoever holds it; returns who held it.
    pub async fn force_unlock(
        &self,
        stack: &str,
        only: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, LockInfo>, Error> {
        let mut out = BTreeMap::new();
        for name in self.scope(only)? {
            if let Some(info) =
                self.providers[&name]
                    .force_unlock(stack)
                    .await
                    .map_err(|error| Error::ForceUnlock {
                        provider: name.clone(),
                        error,
                    })?
            {
                out.insert(name, info);
            }
        }
        Ok(out)
    }
}

fn first_difference(a: &ObservedState, b: &ObservedState) -> Option<String> {
    for (addr, o) in &a.resources {
        match b.resources.get(addr) {
            None => return Some(format!("{addr} is gone")),
            Some(n) if n != o => return Some(format!("{addr} changed")),
            _ => {}
        }
    }
    b.resources
        .keys()
        .find(|k| !a.resources.contains_key(*k))
        .map(|k| format!("{k} appeared"))
}

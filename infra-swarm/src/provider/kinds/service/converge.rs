//! Waiting for a service to converge after a change, and for a removed service's tasks to go.
//!
//! Swarm accepts a service spec at once and converges in the background; `docker stack deploy`
//! returns at that point and never says whether the rollout worked (docker/cli#6752). The
//! provider instead polls (see [`crate::provider::wait`]) until the change has taken effect:
//!
//! * the service's `UpdateStatus` is absent (a create, or a change that restarts no task) or
//!   `completed` — which Swarm reports only after the last batch's update monitor has run;
//! * every task Swarm wants running is running and was created from the service's current task
//!   template (the `infra.template` container label, which the provider sets to a digest of the
//!   template), and there are as many as the declared replicas (at least one for a global
//!   service).
//!
//! The template is read from the service on every poll rather than remembered from the update:
//! when another run updates the service meanwhile (its update is merged on top of ours, see
//! the update's version handling), ours is superseded and what must converge is the latest spec.
//!
//! `paused`, `rollback_paused` and `rollback_completed` end the wait with a failure naming
//! Swarm's reason and the failing task's error; so does a task template whose tasks keep failing
//! on a create (three failed or rejected tasks and none running), and the timeout.

use std::collections::HashMap;

use bollard::models::{Task, TaskState};
use bollard::query_parameters::ListTasksOptions;
use infra_core::provider::ProviderError;

use super::task_template;
use crate::provider::connect::Client;
use crate::provider::errors::api_error;
use crate::provider::wait::{poll, Look};

/// Failed or rejected tasks of the new template, with none running, that end a wait early.
const FAILURES_BEFORE_GIVING_UP: usize = 3;

fn state_name<T: serde::Serialize>(s: Option<&T>) -> String {
    s.and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn is_state(t: &Task, state: TaskState) -> bool {
    t.status.as_ref().and_then(|s| s.state) == Some(state)
}

/// The most recent failure among tasks, as "task <id> <state>: <error> (exit code N)".
fn last_failure(tasks: &[Task], template: Option<&str>) -> Option<String> {
    tasks
        .iter()
        .filter(|t| is_state(t, TaskState::FAILED) || is_state(t, TaskState::REJECTED))
        .filter(|t| template.is_none_or(|tpl| task_template(t.spec.as_ref()) == Some(tpl)))
        .max_by_key(|t| t.updated_at.clone().unwrap_or_default())
        .map(|t| {
            let s = t.status.clone().unwrap_or_default();
            let exit = s
                .container_status
                .as_ref()
                .and_then(|c| c.exit_code)
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default();
            format!(
                "task {} {}: {}{exit}",
                t.id.as_deref().unwrap_or("?"),
                state_name(s.state.as_ref()),
                s.err.or(s.message).unwrap_or_default()
            )
        })
}

/// Waits until service `id` runs its current spec everywhere it should. See the
/// [module docs](self).
pub(super) async fn wait_converged(
    client: &Client,
    id: &str,
    name: &str,
) -> Result<(), ProviderError> {
    let started = std::time::Instant::now();
    let filters = HashMap::from([("service".to_string(), vec![id.to_string()])]);
    let what = format!("service {name} to converge");
    poll(&client.poll_policy(), &what, || {
        look_converged(client, id, name, &filters)
    })
    .await?;
    tracing::debug!(service = %name, elapsed_ms = started.elapsed().as_millis() as u64, "converged");
    Ok(())
}

/// One look at a service's rollout.
async fn look_converged(
    client: &Client,
    id: &str,
    name: &str,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Look<()>, ProviderError> {
    let timeout_secs = client.converge_timeout.as_secs();
    client.count();
    let svc = client
        .docker
        .inspect_service(id, None)
        .await
        .map_err(|e| api_error(&format!("inspecting service {name}"), e))?;
    let replicas = svc
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .map(|r| r.replicas.unwrap_or(1).max(0) as usize);
    let current =
        task_template(svc.spec.as_ref().and_then(|s| s.task_template.as_ref())).map(str::to_string);
    let template = current.as_deref();
    let status = svc.update_status.clone().unwrap_or_default();
    let state = state_name(status.state.as_ref());
    let swarm_says = status.message.clone().unwrap_or_default();

    client.count();
    let tasks = client
        .docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .map_err(|e| api_error(&format!("listing the tasks of {name}"), e))?;
    let detail = || {
        last_failure(&tasks, template)
            .or_else(|| last_failure(&tasks, None))
            .map(|f| format!("; last task failure: {f}"))
            .unwrap_or_default()
    };

    match state.as_str() {
        "paused" => Err(ProviderError::fatal(
            "UpdatePaused",
            format!("{name}: Swarm paused the rolling update ({swarm_says}){}; the service runs a mix of old and new tasks until the next apply", detail()),
        )),
        "rollback_paused" | "rollback_completed" => Err(ProviderError::fatal(
            "UpdateRolledBack",
            format!("{name}: the update failed and Swarm rolled it back ({swarm_says}){}; the service runs its previous spec", detail()),
        )),
        "updating" | "rollback_started" => Ok(Look::Waiting {
            status: format!("rolling update `{state}`"),
            timeout: ProviderError::fatal(
                "ConvergeTimeout",
                format!(
                    "{name}: the rolling update is still `{state}` after {timeout_secs}s{}",
                    detail()
                ),
            ),
        }),
        _ => {
            let wanted: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.desired_state == Some(TaskState::RUNNING))
                .collect();
            let ours = wanted
                .iter()
                .filter(|t| {
                    is_state(t, TaskState::RUNNING) && task_template(t.spec.as_ref()) == template
                })
                .count();
            let others = wanted.len() - ours;
            let done = match replicas {
                Some(n) => ours == n && others == 0,
                None => others == 0 && ours >= 1,
            };
            if done {
                return Ok(Look::Done(()));
            }
            let failed = tasks
                .iter()
                .filter(|t| task_template(t.spec.as_ref()) == template)
                .filter(|t| is_state(t, TaskState::FAILED) || is_state(t, TaskState::REJECTED))
                .count();
            if failed >= FAILURES_BEFORE_GIVING_UP && ours == 0 {
                return Err(ProviderError::fatal(
                    "TasksFailing",
                    format!(
                        "{name}: {failed} tasks of the new spec failed and none is running{}",
                        detail()
                    ),
                ));
            }
            let want = replicas.map_or("every node's".to_string(), |n| n.to_string());
            let seen = format!("{ours} of {want} task(s) running the new spec, {others} other task(s) wanted");
            Ok(Look::Waiting {
                timeout: ProviderError::fatal(
                    "ConvergeTimeout",
                    format!("{name}: not converged after {timeout_secs}s: {seen}{}", detail()),
                ),
                status: seen,
            })
        }
    }
}

/// Waits (bounded) until a removed service's tasks are gone, so that the networks, secrets
/// and node labels they used can be removed next. Listing by service id fails once the
/// service is gone, so tasks are listed by name (a prefix match) and kept by service id. Never
/// fails: a removal that is still finishing is only logged.
pub(super) async fn wait_tasks_gone(client: &Client, id: &str, name: &str) {
    let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
    let what = format!("the tasks of removed service {name} to stop");
    let r = poll(&client.poll_policy(), &what, || {
        let filters = &filters;
        async move {
            client.count();
            match client
                .docker
                .list_tasks(Some(ListTasksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
            {
                Ok(tasks) => {
                    let left = tasks
                        .iter()
                        .filter(|t| t.service_id.as_deref() == Some(id))
                        .count();
                    if left == 0 {
                        return Ok(Look::Done(()));
                    }
                    Ok(Look::Waiting {
                        status: format!("{left} task(s) left"),
                        timeout: ProviderError::fatal(
                            "TasksStopping",
                            format!("the removed service's {left} task(s) are still stopping"),
                        ),
                    })
                }
                // A failed poll says nothing about the tasks: keep waiting (bounded).
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "could not list the removed service's tasks; retrying");
                    Ok(Look::Waiting {
                        status: String::new(),
                        timeout: api_error(&format!("listing the tasks of {name}"), e),
                    })
                }
            }
        }
    })
    .await;
    if let Err(e) = r {
        tracing::warn!(service = %name, error = %e, "the removed service's tasks did not all stop in time");
    }
}

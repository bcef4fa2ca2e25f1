//! `aws_apigatewayv2_api`: an HTTP API with its routes, their Lambda proxy integrations and
//! its stage.
//!
//! * **Read.** `GetApis` returns every API with its tags (paginated by token: the SDK has no
//!   paginator for it); the stack's APIs get a `GetRoutes`, `GetIntegrations` and `GetStages`
//!   each (API Gateway lists routes only per API). Routes and integrations can't be tagged:
//!   they are the API's. The stage read is the one tagged with the stack (else the only one).
//! * **Create.** `CreateApi` takes neither a token nor a unique name, so every create looks
//!   the API up by its tags first ([`AwsKind::lookup_before_create`]); then the routes and the
//!   stage are made as an update from nothing would make them, so a create interrupted after
//!   `CreateApi` is finished by the retry's look-up and convergence.
//! * **Update** changes only what differs, found fresh: a route's integration
//!   (`UpdateIntegration`) and authorization (`UpdateRoute`), new routes (`CreateIntegration`
//!   then `CreateRoute`), removed ones (`DeleteRoute` then `DeleteIntegration`), the stage
//!   (`UpdateStage`, or a new stage before the old one goes), the description and the API's
//!   tags. A stage gets the API's tags when it is made (the ownership tags never change) and
//!   keeps them: tag changes go to the API only, which is what marks ownership (moto answers a
//!   stage's `TagResource` with 404, so stage tags are not re-applied).
//! * **Delete** is `DeleteApi` (its routes, integrations and stages go with it).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_apigatewayv2::types::{
    Api, AuthorizationType, Integration, IntegrationType, ProtocolType, Route, Stage,
};
use futures::stream::{StreamExt, TryStreamExt};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::{map, Value};

use super::{AwsKind, Listings};
use crate::kinds::serverless::HTTP_API;
use crate::provider::common::{
    all_tags, empty, observed_from, opt_bool, opt_str, ownership, req_str, tag_diff, updated_from,
    Cx, Ownership, Props, TAG_STACK,
};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{discovered, observed_at, ownership_tags, Discovery, Unowned};

/// The `aws_apigatewayv2_api` handler.
pub(super) struct HttpApi;

impl KindHandler for HttpApi {
    fn schema(&self) -> &'static KindSchema {
        &HTTP_API
    }
}

/// At most this many APIs are read at once.
const CONCURRENT_APIS: usize = 4;

/// A route as declared (and as read back).
#[derive(Clone, Debug, PartialEq)]
struct RouteSpec {
    route_key: String,
    authorization_type: String,
    function_arn: String,
    payload_format_version: String,
    timeout_ms: i64,
}

impl RouteSpec {
    fn to_value(&self) -> Value {
        map! {
            "route_key" => self.route_key.as_str(),
            "authorization_type" => self.authorization_type.as_str(),
            "function_arn" => self.function_arn.as_str(),
            "payload_format_version" => self.payload_format_version.as_str(),
            "timeout_ms" => self.timeout_ms,
        }
    }
    fn from_value(v: &Value) -> Option<RouteSpec> {
        let m = v.as_map()?;
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        Some(RouteSpec {
            route_key: s("route_key")?,
            authorization_type: s("authorization_type").unwrap_or_else(|| "NONE".into()),
            function_arn: s("function_arn")?,
            payload_format_version: s("payload_format_version").unwrap_or_else(|| "2.0".into()),
            timeout_ms: m
                .get("timeout_ms")
                .and_then(Value::as_i64)
                .unwrap_or(30_000),
        })
    }
}

/// A route as it is in AWS, with the ids to change it.
#[derive(Clone, Debug)]
struct LiveRoute {
    spec: RouteSpec,
    route_id: String,
    integration_id: Option<String>,
}

/// An API with everything read about it.
#[derive(Clone, Debug)]
struct LiveApi {
    api: Api,
    owned: Ownership,
    routes: Vec<LiveRoute>,
    /// Integrations no route targets: left by a create whose `CreateRoute` never happened (or
    /// whose `CreateIntegration` response was lost). Reused for a new route to the same
    /// function, deleted otherwise.
    orphans: Vec<(String, String)>,
    stage: Option<Stage>,
}

/// `arn:aws:apigateway:<region>::/apis/<id>`: what tagging calls take.
fn api_arn(cx: &Cx<'_>, id: &str) -> String {
    format!("arn:aws:apigateway:{}::/apis/{id}", cx.c.region)
}

/// The source ARN of the API's invocations, in the account of its functions.
fn source_arn(region: &str, id: &str, routes: &[RouteSpec]) -> Option<String> {
    let account = routes
        .iter()
        .find_map(|r| r.function_arn.split(':').nth(4).filter(|a| !a.is_empty()))?;
    Some(format!("arn:aws:execute-api:{region}:{account}:{id}/*"))
}

/// Every API of the account (their tags included).
async fn list_apis(cx: &Cx<'_>) -> Result<Vec<Api>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            cx.c.apigw_read
                .get_apis()
                .set_next_token(token.take())
                .send()
                .await
                .aws("GetApis")?;
        out.extend(page.items().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

async fn routes_of(cx: &Cx<'_>, id: &str) -> Result<Vec<Route>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            cx.c.apigw_read
                .get_routes()
                .api_id(id)
                .set_next_token(token.take())
                .send()
                .await
                .aws("GetRoutes")?;
        out.extend(page.items().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

async fn integrations_of(cx: &Cx<'_>, id: &str) -> Result<Vec<Integration>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            cx.c.apigw_read
                .get_integrations()
                .api_id(id)
                .set_next_token(token.take())
                .send()
                .await
                .aws("GetIntegrations")?;
        out.extend(page.items().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

async fn stages_of(cx: &Cx<'_>, id: &str) -> Result<Vec<Stage>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            cx.c.apigw_read
                .get_stages()
                .api_id(id)
                .set_next_token(token.take())
                .send()
                .await
                .aws("GetStages")?;
        out.extend(page.items().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The routes, integrations and stage of one API; `None` when it went away meanwhile.
async fn details(
    cx: &Cx<'_>,
    api: Api,
    owned: Ownership,
) -> Result<Option<LiveApi>, ProviderError> {
    let Some(id) = api.api_id().map(str::to_string) else {
        return Ok(None);
    };
    let Some(routes) = routes_of(cx, &id).await.or_not_found()? else {
        return Ok(None);
    };
    let integrations: HashMap<String, Integration> = integrations_of(cx, &id)
        .await
        .or_not_found()?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| Some((i.integration_id()?.to_string(), i)))
        .collect();
    let stages = stages_of(cx, &id).await.or_not_found()?.unwrap_or_default();
    let stage = stages
        .iter()
        .find(|s| {
            s.tags()
                .and_then(|t| t.get(TAG_STACK))
                .is_some_and(|v| v == cx.stack)
        })
        .or(stages.first())
        .cloned();
    let routes: Vec<LiveRoute> = routes
        .iter()
        .filter_map(|r| {
            let integration_id = r
                .target()
                .and_then(|t| t.strip_prefix("integrations/"))
                .map(str::to_string);
            let integration = integration_id.as_ref().and_then(|i| integrations.get(i));
            Some(LiveRoute {
                spec: RouteSpec {
                    route_key: r.route_key()?.to_string(),
                    authorization_type: r
                        .authorization_type()
                        .map_or("NONE", |a| a.as_str())
                        .to_string(),
                    function_arn: integration
                        .and_then(|i| i.integration_uri())
                        .unwrap_or_default()
                        .to_string(),
                    payload_format_version: integration
                        .and_then(|i| i.payload_format_version())
                        .unwrap_or("1.0")
                        .to_string(),
                    timeout_ms: integration
                        .and_then(|i| i.timeout_in_millis())
                        .map_or(30_000, i64::from),
                },
                route_id: r.route_id()?.to_string(),
                integration_id,
            })
        })
        .collect();
    let targeted: Vec<&str> = routes
        .iter()
        .filter_map(|r: &LiveRoute| r.integration_id.as_deref())
        .collect();
    let mut orphans: Vec<(String, String)> = integrations
        .iter()
        .filter(|(id, _)| !targeted.contains(&id.as_str()))
        .map(|(id, i)| {
            (
                id.clone(),
                i.integration_uri().unwrap_or_default().to_string(),
            )
        })
        .collect();
    orphans.sort();
    Ok(Some(LiveApi {
        api,
        owned,
        routes,
        orphans,
        stage,
    }))
}

/// The stack's APIs (or the one at `address`) with their routes and stage.
async fn read_apis(cx: &Cx<'_>, address: Option<&Address>) -> Result<Vec<LiveApi>, ProviderError> {
    let owned: Vec<(Api, Ownership)> = list_apis(cx)
        .await?
        .into_iter()
        .filter_map(|api| {
            let o = ownership(
                cx.stack,
                HTTP_API.kind,
                api.tags()?.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            match address {
                Some(a) if &o.address != a => None,
                _ => Some((api, o)),
            }
        })
        .collect();
    let live: Vec<Option<LiveApi>> = futures::stream::iter(owned)
        .map(|(api, o)| details(cx, api, o))
        .buffered(CONCURRENT_APIS)
        .try_collect()
        .await?;
    Ok(live.into_iter().flatten().collect())
}

fn observe(cx: &Cx<'_>, l: &LiveApi) -> Option<Observed> {
    let id = l.api.api_id()?;
    let mut routes: Vec<RouteSpec> = l.routes.iter().map(|r| r.spec.clone()).collect();
    routes.sort_by(|a, b| a.route_key.cmp(&b.route_key));
    let mut props = Props::default();
    props
        .set("description", l.api.description().filter(|d| !d.is_empty()))
        .set(
            "routes",
            Value::List(routes.iter().map(RouteSpec::to_value).collect()),
        )
        .set("api_endpoint", l.api.api_endpoint())
        .set("source_arn", source_arn(&cx.c.region, id, &routes))
        .tags(&l.owned.user);
    if let Some(s) = &l.stage {
        props
            .set("stage_name", s.stage_name())
            .set("auto_deploy", s.auto_deploy().unwrap_or(false));
    }
    Some(props.observed(l.owned.clone(), id))
}

fn declared_routes(d: &Resolved) -> Result<Vec<RouteSpec>, ProviderError> {
    d.get("routes")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            RouteSpec::from_value(r).ok_or_else(|| {
                ProviderError::fatal(
                    "InvalidRoute",
                    format!("{}: a route lacks its key or its function's ARN", d.address),
                )
            })
        })
        .collect()
}

fn to_i32(ms: i64) -> i32 {
    i32::try_from(ms).unwrap_or(30_000)
}

/// Points an integration at the route's function with its settings.
async fn update_integration(
    cx: &Cx<'_>,
    id: &str,
    integration_id: &str,
    r: &RouteSpec,
) -> Result<(), ProviderError> {
    cx.c.apigw
        .update_integration()
        .api_id(id)
        .integration_id(integration_id)
        .integration_type(IntegrationType::AwsProxy)
        .integration_method("POST")
        .integration_uri(&r.function_arn)
        .payload_format_version(&r.payload_format_version)
        .timeout_in_millis(to_i32(r.timeout_ms))
        .send()
        .await
        .aws("UpdateIntegration")?;
    Ok(())
}

/// A route and its integration: an orphan integration to the same function is reused (and
/// updated), else one is made.
async fn create_route(
    cx: &Cx<'_>,
    id: &str,
    r: &RouteSpec,
    orphans: &mut Vec<(String, String)>,
) -> Result<(), ProviderError> {
    let integration_id = match orphans.iter().position(|(_, uri)| *uri == r.function_arn) {
        Some(i) => {
            let (integration_id, _) = orphans.remove(i);
            update_integration(cx, id, &integration_id, r).await?;
            integration_id
        }
        None => {
            cx.c.apigw
                .create_integration()
                .api_id(id)
                .integration_type(IntegrationType::AwsProxy)
                .integration_method("POST")
                .integration_uri(&r.function_arn)
                .payload_format_version(&r.payload_format_version)
                .timeout_in_millis(to_i32(r.timeout_ms))
                .send()
                .await
                .aws("CreateIntegration")?
                .integration_id()
                .ok_or_else(|| empty("CreateIntegration"))?
                .to_string()
        }
    };
    cx.c.apigw
        .create_route()
        .api_id(id)
        .route_key(&r.route_key)
        .target(format!("integrations/{integration_id}"))
        .authorization_type(AuthorizationType::from(r.authorization_type.as_str()))
        .send()
        .await
        .aws("CreateRoute")?;
    Ok(())
}

/// Takes the API's routes and stage from what `live` has to what `d` declares.
async fn converge_children(
    cx: &Cx<'_>,
    id: &str,
    live: Option<&LiveApi>,
    d: &Resolved,
) -> Result<(), ProviderError> {
    let want = declared_routes(d)?;
    let mut orphans = live.map(|l| l.orphans.clone()).unwrap_or_default();
    let have: BTreeMap<&str, &LiveRoute> = live
        .map(|l| {
            l.routes
                .iter()
                .map(|r| (r.spec.route_key.as_str(), r))
                .collect()
        })
        .unwrap_or_default();
    for r in &want {
        match have.get(r.route_key.as_str()) {
            None => create_route(cx, id, r, &mut orphans).await?,
            Some(cur) if cur.spec == *r => {}
            Some(cur) => {
                match &cur.integration_id {
                    Some(integration_id) => {
                        update_integration(cx, id, integration_id, r).await?;
                        if cur.spec.authorization_type != r.authorization_type {
                            cx.c.apigw
                                .update_route()
                                .api_id(id)
                                .route_id(&cur.route_id)
                                .authorization_type(AuthorizationType::from(
                                    r.authorization_type.as_str(),
                                ))
                                .send()
                                .await
                                .aws("UpdateRoute")?;
                        }
                    }
                    // A route without an integration (made by hand): make it anew.
                    None => {
                        cx.c.apigw
                            .delete_route()
                            .api_id(id)
                            .route_id(&cur.route_id)
                            .send()
                            .await
                            .aws("DeleteRoute")
                            .or_not_found()?;
                        create_route(cx, id, r, &mut orphans).await?;
                    }
                }
            }
        }
    }
    for (key, cur) in &have {
        if want.iter().any(|r| r.route_key == *key) {
            continue;
        }
        cx.c.apigw
            .delete_route()
            .api_id(id)
            .route_id(&cur.route_id)
            .send()
            .await
            .aws("DeleteRoute")
            .or_not_found()?;
        if let Some(i) = &cur.integration_id {
            cx.c.apigw
                .delete_integration()
                .api_id(id)
                .integration_id(i)
                .send()
                .await
                .aws("DeleteIntegration")
                .or_not_found()?;
        }
    }
    for (integration_id, _) in orphans {
        cx.c.apigw
            .delete_integration()
            .api_id(id)
            .integration_id(integration_id)
            .send()
            .await
            .aws("DeleteIntegration")
            .or_not_found()?;
    }

    let stage = req_str(d, "stage_name")?;
    let auto_deploy = opt_bool(d, "auto_deploy").unwrap_or(true);
    let tags: HashMap<String, String> = all_tags(cx.stack, d).into_iter().collect();
    match live.and_then(|l| l.stage.as_ref()) {
        Some(s) if s.stage_name() == Some(stage.as_str()) => {
            if s.auto_deploy() != Some(auto_deploy) {
                cx.c.apigw
                    .update_stage()
                    .api_id(id)
                    .stage_name(&stage)
                    .auto_deploy(auto_deploy)
                    .send()
                    .await
                    .aws("UpdateStage")?;
            }
        }
        old => {
            // The new stage first, so the API never serves nothing longer than it must.
            cx.c.apigw
                .create_stage()
                .api_id(id)
                .stage_name(&stage)
                .auto_deploy(auto_deploy)
                .set_tags(Some(tags))
                .send()
                .await
                .aws("CreateStage")?;
            if let Some(old) = old.and_then(|s| s.stage_name()) {
                cx.c.apigw
                    .delete_stage()
                    .api_id(id)
                    .stage_name(old)
                    .send()
                    .await
                    .aws("DeleteStage")
                    .or_not_found()?;
            }
        }
    }
    Ok(())
}

/// An unowned API's routes and stage as a read gives them, with its tags (for import).
async fn unowned_props(
    cx: &Cx<'_>,
    api: Api,
    tags: &Unowned,
) -> Result<Option<(Props, Vec<String>)>, ProviderError> {
    // `details` and `observe` take an ownership: a placeholder one, whose address is dropped.
    let owned = Ownership {
        address: Address::new(HTTP_API.kind, "import"),
        protect: false,
        declared: None,
        user: tags.user.clone(),
    };
    let Some(live) = details(cx, api, owned).await? else {
        return Ok(None);
    };
    let mut notes = Vec::new();
    if !live.orphans.is_empty() {
        notes.push(format!(
            "{} integration(s) no route targets are not declared",
            live.orphans.len()
        ));
    }
    Ok(observe(cx, &live).map(|o| (Props(o.props.into()), notes)))
}

#[async_trait]
impl AwsKind for HttpApi {
    /// GetApis pages (by token: the SDK has no paginator; the page size is the service's
    /// default, the SDK taking it as a string), their tags included, then the routes,
    /// integrations and stages of each unowned API (4 at once). The name filter applies to the
    /// API's name; the `vpc` filter keeps the APIs routing to a function this pass handed over.
    /// WebSocket APIs are listed as inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let apis: Vec<(Api, Unowned)> = list_apis(cx)
            .await?
            .into_iter()
            .filter_map(|api| {
                let tags = Unowned::of(
                    api.tags()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                )?;
                pass.matches(api.name()?, &tags.all).then_some((api, tags))
            })
            .collect();
        for (api, tags) in apis {
            let id = api.api_id().unwrap_or_default().to_string();
            let name = api.name().unwrap_or_default().to_string();
            if api.protocol_type() != Some(&ProtocolType::Http) {
                pass.inexpressible(
                    "API Gateway v2 API",
                    &id,
                    "it is a WebSocket API: infra declares HTTP APIs",
                );
                continue;
            }
            let Some((props, notes)) = unowned_props(cx, api, &tags).await? else {
                continue;
            };
            let functions = props
                .0
                .get("routes")
                .and_then(Value::as_list)
                .unwrap_or(&[])
                .iter()
                .filter_map(|r| {
                    r.as_map()?
                        .get("function_arn")?
                        .as_str()
                        .map(str::to_string)
                })
                .collect::<Vec<_>>();
            if !pass.refers_to_seen(functions.iter().map(String::as_str)) {
                continue;
            }
            let mut found = discovered(&HTTP_API, &id, tags.name.as_deref().or(Some(&name)), props);
            found.notes = notes;
            pass.object(found);
        }
        Ok(())
    }

    /// GetApi, then its routes, integrations and stage.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let Some(out) =
            cx.c.apigw_read
                .get_api()
                .api_id(id)
                .send()
                .await
                .aws("GetApi")
                .or_not_found()?
        else {
            return Ok(None);
        };
        let tags = Unowned::parse(
            out.tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let api = Api::builder()
            .set_api_id(out.api_id().map(str::to_string))
            .set_name(out.name().map(str::to_string))
            .set_description(out.description().map(str::to_string))
            .set_api_endpoint(out.api_endpoint().map(str::to_string))
            .set_protocol_type(out.protocol_type().cloned())
            .set_route_selection_expression(out.route_selection_expression().map(str::to_string))
            .set_tags(out.tags().cloned())
            .build();
        Ok(unowned_props(cx, api, &tags)
            .await?
            .map(|(props, _)| observed_at(address, id, props, &tags)))
    }

    /// TagResource on the API: `infra:stack` and `infra:id` (its stage keeps its tags).
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        cx.c.apigw
            .tag_resource()
            .resource_arn(api_arn(cx, &current.id))
            .set_tags(Some(ownership_tags(cx, to).into_iter().collect()))
            .send()
            .await
            .aws("TagResource")?;
        Ok(Observed {
            address: to.clone(),
            ..current.clone()
        })
    }

    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        Ok(read_apis(cx, None)
            .await?
            .iter()
            .filter_map(|l| observe(cx, l))
            .collect())
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_apis(cx, Some(a))
            .await?
            .iter()
            .find_map(|l| observe(cx, l)))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.apigw
                .create_api()
                .name(cx.physical_name(&d.address))
                .protocol_type(ProtocolType::Http)
                .set_description(opt_str(d, "description"))
                .set_tags(Some(all_tags(cx.stack, d).into_iter().collect()))
                .send()
                .await
                .aws("CreateApi")?;
        let id = out.api_id().ok_or_else(|| empty("CreateApi"))?.to_string();
        converge_children(cx, &id, None, d).await?;
        let routes = declared_routes(d)?;
        Ok(observed_from(
            d,
            id.clone(),
            &[
                ("api_endpoint", Value::from(out.api_endpoint())),
                (
                    "source_arn",
                    Value::from(source_arn(&cx.c.region, &id, &routes)),
                ),
            ],
        ))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let id = current.id.clone();
        if changed.iter().any(|f| f == "description") {
            cx.c.apigw
                .update_api()
                .api_id(&id)
                .description(opt_str(d, "description").unwrap_or_default())
                .send()
                .await
                .aws("UpdateApi")?;
        }
        if changed
            .iter()
            .any(|f| matches!(f.as_str(), "routes" | "stage_name" | "auto_deploy"))
        {
            // Fresh: the ids of routes and integrations, and what an earlier attempt did.
            let live = read_apis(cx, Some(&d.address)).await?;
            let live = live.iter().find(|l| l.api.api_id() == Some(id.as_str()));
            converge_children(cx, &id, live, d).await?;
        }
        let diff = tag_diff(current, d);
        if !diff.set.is_empty() {
            cx.c.apigw
                .tag_resource()
                .resource_arn(api_arn(cx, &id))
                .set_tags(Some(diff.set.into_iter().collect()))
                .send()
                .await
                .aws("TagResource")?;
        }
        if !diff.remove.is_empty() {
            cx.c.apigw
                .untag_resource()
                .resource_arn(api_arn(cx, &id))
                .set_tag_keys(Some(diff.remove))
                .send()
                .await
                .aws("UntagResource")?;
        }
        let mut o = updated_from(current, d);
        let routes = declared_routes(d)?;
        o.props.insert(
            "source_arn".into(),
            Value::from(source_arn(&cx.c.region, &id, &routes)),
        );
        Ok(o)
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        cx.c.apigw
            .delete_api()
            .api_id(&current.id)
            .send()
            .await
            .aws("DeleteApi")?;
        Ok(())
    }

    fn lookup_before_create(&self) -> bool {
        true
    }
}

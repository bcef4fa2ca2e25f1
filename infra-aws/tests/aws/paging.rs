//! Every listing follows pagination. A small proxy between the provider and moto makes every
//! listing answer in pages of a few items: it adds a page size to the listings that carry none
//! (EC2 `MaxResults`, Auto Scaling `MaxRecords`, IAM `MaxItems`), and for the listings moto
//! answers in one piece whatever the page size (security groups, launch templates and their
//! versions, `GetAccountAuthorizationDetails`) it cuts moto's answer into pages itself, with a
//! `NextToken`/`Marker` of its own. A page never holds more than [`PAGE`] items, even when the
//! request asks for more (AWS may always answer with fewer). A stack of 40 launch templates, 40
//! security groups and 40 IAM roles must then re-plan empty, and destroy everything.
//!
//! Moto truncates `DescribeLaunchTemplates` and `DescribeLaunchTemplateVersions` to
//! `MaxResults` (15 when absent) without a `NextToken`: the proxy forwards the request's own
//! page size to moto, so a provider that leaves it out sees that truncation here too.
//!
//! The proxy also records the page size each listing of the no-op re-plan asked for: every one
//! must ask for the largest page its API allows ([`MAX_PAGE`]), so that a read takes the fewest
//! calls AWS permits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use infra_aws::*;
use infra_core::dsl::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{apply, assert_noop, destroy, endpoint, moto, unique, Moto};

/// The most items a listing page holds through the proxy.
const PAGE: usize = 5;

const N: usize = 40;

/// The largest page each listing of a read may ask for, from the AWS API references (EC2
/// `MaxResults`, Auto Scaling `MaxRecords`, IAM `MaxItems`).
const MAX_PAGE: &[(&str, usize)] = &[
    ("DescribeVpcs", 1000),
    ("DescribeSubnets", 1000),
    ("DescribeInternetGateways", 1000),
    ("DescribeNatGateways", 1000),
    ("DescribeRouteTables", 100),
    ("DescribeSecurityGroups", 1000),
    ("DescribeLaunchTemplates", 200),
    ("DescribeLaunchTemplateVersions", 200),
    ("DescribeAutoScalingGroups", 100),
    ("DescribePolicies", 100),
    ("GetAccountAuthorizationDetails", 1000),
    ("ListInstanceProfiles", 1000),
];

/// The listings of a read whose API has no page size: `DescribeAddresses` answers whole, and
/// `DescribeLifecycleHooks` (one group's hooks, at most 50) too.
const UNPAGED: &[&str] = &["DescribeAddresses", "DescribeLifecycleHooks"];

/// Per action: responses seen, and those that carried a next-page token; while `recording`,
/// the page sizes the requests asked for.
#[derive(Default, Debug)]
struct Counts {
    calls: BTreeMap<String, usize>,
    paged: BTreeMap<String, usize>,
    recording: bool,
    asked: BTreeMap<String, std::collections::BTreeSet<Option<usize>>>,
}

type Shared = Arc<Mutex<Counts>>;

/// Starts the proxy in front of `upstream` (`host:port`); returns its URL.
async fn start_proxy(upstream: String, counts: Shared) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let _ = serve(conn, &upstream, &counts).await;
            });
        }
    });
    format!("http://{addr}")
}

/// One HTTP/1.1 message: the start line, the headers, the body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message with a `Content-Length` body (what the SDK sends and moto answers);
/// `None` at a clean end of the stream.
async fn read_message(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 16384];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut msg = Message {
        start,
        headers,
        body: Vec::new(),
    };
    assert!(
        msg.header("transfer-encoding").is_none(),
        "the paging proxy handles Content-Length bodies only: {}",
        msg.start
    );
    let len: usize = msg
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let total = head_end + 4 + len;
    while buf.len() < total {
        let mut chunk = [0u8; 16384];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    msg.body = buf[head_end + 4..total].to_vec();
    buf.drain(..total);
    Ok(Some(msg))
}

/// Serves one client connection (keep-alive): each request goes to moto on a fresh connection.
async fn serve(mut conn: TcpStream, upstream: &str, counts: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_message(&mut conn, &mut buf).await? {
        let resp = handle(req, upstream, counts).await?;
        conn.write_all(&resp.to_bytes()).await?;
    }
    Ok(())
}

async fn forward(mut req: Message, upstream: &str) -> std::io::Result<Message> {
    req.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("accept-encoding"));
    req.headers.push(("connection".into(), "close".into()));
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&req.to_bytes()).await?;
    let mut buf = Vec::new();
    read_message(&mut up, &mut buf)
        .await?
        .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
}

/// The API a query-protocol request is for, from its `Version`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Api {
    Ec2,
    AutoScaling,
    Iam,
    Other,
}

/// The listings moto answers in one piece, cut into pages here: per list element, the child
/// elements of an item that identify it (its page key).
type Lists = &'static [(&'static str, &'static [&'static str])];

fn cut_by_proxy(action: &str) -> Option<Lists> {
    Some(match action {
        "DescribeSecurityGroups" => &[("securityGroupInfo", &["groupId"])],
        "DescribeLaunchTemplates" => &[("launchTemplates", &["launchTemplateId"])],
        "DescribeLaunchTemplateVersions" => &[(
            "launchTemplateVersionSet",
            &["launchTemplateId", "versionNumber"],
        )],
        "GetAccountAuthorizationDetails" => &[
            ("UserDetailList", &["UserId"]),
            ("GroupDetailList", &["GroupId"]),
            ("RoleDetailList", &["RoleId"]),
            ("Policies", &["PolicyId"]),
        ],
        _ => return None,
    })
}

async fn handle(req: Message, upstream: &str, counts: &Shared) -> std::io::Result<Message> {
    let body = String::from_utf8_lossy(&req.body).to_string();
    let mut params: Vec<(String, String)> = body
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    let get = |params: &[(String, String)], k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
    };
    let action = get(&params, "Action").unwrap_or_default();
    let api = match get(&params, "Version").as_deref() {
        Some("2016-11-15") => Api::Ec2,
        Some("2011-01-01") => Api::AutoScaling,
        Some("2010-05-08") => Api::Iam,
        _ => Api::Other,
    };
    let listing = match api {
        Api::Ec2 => action.starts_with("Describe") && !action.ends_with("Attribute"),
        Api::AutoScaling => action.starts_with("Describe"),
        Api::Iam => action.starts_with("List") || action == "GetAccountAuthorizationDetails",
        Api::Other => false,
    };
    if !listing {
        return forward(req, upstream).await;
    }
    let (size_key, token_key) = match api {
        Api::Ec2 => ("MaxResults", "NextToken"),
        Api::AutoScaling => ("MaxRecords", "NextToken"),
        _ => ("MaxItems", "Marker"),
    };
    let asked: Option<usize> = get(&params, size_key).and_then(|v| v.parse().ok());
    {
        let mut c = counts.lock().unwrap();
        if c.recording {
            c.asked.entry(action.clone()).or_default().insert(asked);
        }
    }
    let page = asked.map_or(PAGE, |a| a.min(PAGE));

    let resp = if let Some(lists) = cut_by_proxy(&action) {
        // moto answers in one piece: ask it for everything (with the request's own page size,
        // which moto may truncate to) and cut the page here.
        let after = get(&params, token_key);
        params.retain(|(k, _)| k != token_key);
        let mut req = req;
        req.body = join(&params).into_bytes();
        let mut resp = forward(req, upstream).await?;
        if resp.start.contains(" 200 ") {
            let text = String::from_utf8_lossy(&resp.body).to_string();
            resp.body = cut_page(&text, api, lists, after.as_deref(), page).into_bytes();
        }
        resp
    } else {
        // moto pages these itself: ask for small pages. EC2 rejects a page size together with
        // ids for some listings: leave those alone.
        let by_id = api == Api::Ec2 && params.iter().any(|(k, _)| k.contains("Id."));
        if asked.is_none() && !by_id {
            params.push((size_key.to_string(), PAGE.to_string()));
        }
        let mut req = req;
        req.body = join(&params).into_bytes();
        forward(req, upstream).await?
    };
    let text = String::from_utf8_lossy(&resp.body);
    let paged = match api {
        Api::Iam => text.contains("<IsTruncated>true</IsTruncated>"),
        _ => text.contains("<nextToken>") || text.contains("<NextToken>"),
    };
    let mut c = counts.lock().unwrap();
    *c.calls.entry(action.clone()).or_default() += 1;
    if paged {
        *c.paged.entry(action).or_default() += 1;
    }
    Ok(resp)
}

fn join(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The top-level `<item>`/`<member>` elements of `inner`.
fn items<'a>(inner: &'a str, item: &str) -> Vec<&'a str> {
    let open = format!("<{item}>");
    let close = format!("</{item}>");
    let empty = format!("<{item}/>");
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut i = 0usize;
    while i < inner.len() {
        let rest = &inner[i..];
        if rest.starts_with(&open) {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += open.len();
        } else if rest.starts_with(&close) {
            depth -= 1;
            i += close.len();
            if depth == 0 {
                out.push(&inner[start..i]);
            }
        } else if rest.starts_with(&empty) {
            if depth == 0 {
                out.push(&inner[i..i + empty.len()]);
            }
            i += empty.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// The text of `item`'s direct child element `name`.
fn child<'a>(item: &'a str, name: &str) -> Option<&'a str> {
    let mut depth = 0i32;
    let mut i = 0usize;
    while let Some(lt) = item[i..].find('<') {
        let at = i + lt;
        let gt = at + item[at..].find('>')?;
        let tag = &item[at + 1..gt];
        if tag.starts_with('/') {
            depth -= 1;
        } else if !tag.ends_with('/') && !tag.starts_with('?') {
            if depth == 1 && tag == name {
                let end = gt + 1 + item[gt + 1..].find('<')?;
                return Some(&item[gt + 1..end]);
            }
            depth += 1;
        }
        i = gt + 1;
    }
    None
}

/// Cuts one page out of moto's whole answer: the items are ordered by their key (list, then
/// the key children), the page holds the first `page` items after the key `after`, and the next
/// token is the key of its last item. Keys make the pages stable while other tests create and
/// delete objects between two pages (offsets would skip items).
fn cut_page(text: &str, api: Api, lists: Lists, after: Option<&str>, page: usize) -> String {
    let item = if api == Api::Iam { "member" } else { "item" };
    let mut all: Vec<(String, usize, String)> = Vec::new();
    for (n, (list, key)) in lists.iter().enumerate() {
        let (open, close) = (format!("<{list}>"), format!("</{list}>"));
        let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
            continue;
        };
        for it in items(&text[a + open.len()..b], item) {
            let k: Vec<String> = key
                .iter()
                .map(|c| {
                    let v = child(it, c).unwrap_or_default();
                    // Numbers sort as numbers.
                    v.parse::<u64>()
                        .map_or(v.to_string(), |n| format!("{n:012}"))
                })
                .collect();
            all.push((format!("{n}.{}", k.join(".")), n, it.to_string()));
        }
    }
    all.sort_by(|x, y| x.0.cmp(&y.0));
    let kept: Vec<_> = all
        .iter()
        .filter(|(k, _, _)| after.is_none_or(|a| k.as_str() > a))
        .take(page)
        .collect();
    let more = all
        .iter()
        .filter(|(k, _, _)| after.is_none_or(|a| k.as_str() > a))
        .count()
        > page;
    let mut out = text.to_string();
    for (n, (list, _)) in lists.iter().enumerate() {
        let (open, close) = (format!("<{list}>"), format!("</{list}>"));
        let (Some(a), Some(b)) = (out.find(&open), out.find(&close)) else {
            continue;
        };
        let body: String = kept
            .iter()
            .filter(|(_, l, _)| *l == n)
            .map(|(_, _, it)| it.as_str())
            .collect();
        out = format!("{}{body}{}", &out[..a + open.len()], &out[b..]);
    }
    if let (true, Some((next, _, _))) = (more, kept.last()) {
        out = match api {
            Api::Iam => out.replace(
                "<IsTruncated>false</IsTruncated>",
                &format!("<IsTruncated>true</IsTruncated><Marker>{next}</Marker>"),
            ),
            _ => {
                let at = out.rfind("</").expect("a closing root element");
                format!("{}<nextToken>{next}</nextToken>{}", &out[..at], &out[at..])
            }
        };
    }
    out
}

fn stack(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.70.0.0/16"));
    for i in 0..N {
        s.add(
            LaunchTemplate::new(&format!("lt{i}"))
                .image("ami-12c6146b")
                .instance_type("t3.micro")
                .user_data(&format!("#!/bin/sh\necho {i}\n")),
        );
        s.add(SecurityGroup::new(&format!("sg{i}")).vpc(&vpc).egress_all());
        s.add(IamRole::new(&format!("r{i}")).assumed_by_service("ec2.amazonaws.com"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_every_listing_follows_pages() {
    // `moto` checks the endpoint (and skips or fails by the usual rule).
    let Some(direct) = moto("paging_every_listing_follows_pages").await else {
        return;
    };
    let upstream = endpoint()
        .split("://")
        .nth(1)
        .map(|s| s.trim_end_matches('/').to_string())
        .expect("endpoint URL");
    let counts: Shared = Arc::default();
    let proxy = start_proxy(upstream, counts.clone()).await;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&proxy)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let provider = AwsProvider::from_sdk_config(&config)
        .expect("region is set")
        .with_wait_timeout(Duration::from_secs(60))
        .with_max_poll_interval(Duration::from_millis(200));
    let m = Moto {
        provider: Arc::new(provider),
        ..direct
    };
    let engine = m.engine();
    let s = stack(&unique("paging"));

    let t0 = Instant::now();
    apply(&engine, &s).await;
    let applied = t0.elapsed();
    counts.lock().unwrap().recording = true;
    assert_noop(&engine, &s, "re-plan through 5-item pages").await;
    counts.lock().unwrap().recording = false;
    let replanned = t0.elapsed();
    destroy(&m, &engine, &s).await;

    let c = counts.lock().unwrap();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "paging: apply {applied:?}, re-plan done at {replanned:?}, total {:?}\n\
             calls {:?}\npaged {:?}\n",
            t0.elapsed(),
            c.calls,
            c.paged
        )
        .as_bytes(),
    );
    for action in [
        "DescribeSecurityGroups",
        "DescribeLaunchTemplates",
        "DescribeLaunchTemplateVersions",
        "GetAccountAuthorizationDetails",
    ] {
        assert!(
            c.paged.get(action).copied().unwrap_or(0) > 0,
            "{action} never answered with a next page: {c:?}"
        );
    }
    // Every listing of the re-plan asked for AWS's largest page, and no listing is unknown here.
    assert!(
        c.asked.contains_key("DescribeSecurityGroups"),
        "no page size recorded: {c:?}"
    );
    for (action, sizes) in &c.asked {
        if UNPAGED.contains(&action.as_str()) {
            continue;
        }
        let max = MAX_PAGE
            .iter()
            .find(|(a, _)| a == action)
            .map(|(_, m)| *m)
            .unwrap_or_else(|| {
                panic!("{action}: a listing of the read with no known maximum page")
            });
        assert!(
            sizes.iter().all(|s| *s == Some(max)),
            "{action} asked for pages of {sizes:?}, AWS allows {max}"
        );
    }
}

//! Network kinds: VPC, subnet, internet gateway, Elastic IP, NAT gateway, route table and
//! security group, one module per kind (the gateways together).
//!
//! Sub-objects that AWS cannot tag (routes, route table associations, the internet gateway's
//! attachment, security group rules) are properties of their tagged parent and are changed item
//! by item: one changed rule or route never touches the others.

mod gateway;
mod route_table;
mod security_group;
mod subnet;
mod vpc;

pub use gateway::{nat_gateway_with_eip, ElasticIp, InternetGateway, NatGateway};
pub use route_table::RouteTable;
pub use security_group::{Rule, SecurityGroup};
pub use subnet::{availability_zone_problems, is_az_name, Subnet};
pub use vpc::Vpc;

pub(crate) use gateway::{ELASTIC_IP, INTERNET_GATEWAY, NAT_GATEWAY};
pub(crate) use route_table::ROUTE_TABLE;
#[cfg(feature = "live")]
pub(crate) use security_group::canonical_protocol;
pub(crate) use security_group::{portless, SECURITY_GROUP};
pub(crate) use subnet::SUBNET;
pub(crate) use vpc::VPC;

#!/usr/bin/env python3
"""What each listing of infra's AWS read costs moto: replays the read's calls (same operations,
same tag filters, as in infra-aws/src/provider/*::read) for the stack left in moto by the last
`bench_aws refresh`, three times each, and prints one JSON object {operation: median ms}.
The client is boto3 (a few ms of its own per call); moto serves one request at a time.

    AWS_ENDPOINT_URL=http://127.0.0.1:5631 $MOTO_VENV/bin/python bench/moto_cost.py
"""

import json
import os
import statistics
import time

import boto3

url = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5631")
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
ec2, iam, asg = boto3.client("ec2", **kw), boto3.client("iam", **kw), boto3.client("autoscaling", **kw)

vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["infra:stack"]}])["Vpcs"]
stack = next(t["Value"] for t in vpcs[0]["Tags"] if t["Key"] == "infra:stack")
f = [{"Name": "tag:infra:stack", "Values": [stack]}]
calls = {
    "ec2.DescribeVpcs": lambda: ec2.describe_vpcs(Filters=f),
    "ec2.DescribeVpcAttribute": lambda: ec2.describe_vpc_attribute(VpcId=vpcs[0]["VpcId"], Attribute="enableDnsSupport"),
    "ec2.DescribeSubnets": lambda: ec2.describe_subnets(Filters=f),
    "ec2.DescribeInternetGateways": lambda: ec2.describe_internet_gateways(Filters=f),
    "ec2.DescribeAddresses": lambda: ec2.describe_addresses(Filters=f),
    "ec2.DescribeNatGateways": lambda: ec2.describe_nat_gateways(Filters=f),
    "ec2.DescribeRouteTables": lambda: ec2.describe_route_tables(Filters=f),
    "ec2.DescribeSecurityGroups": lambda: ec2.describe_security_groups(Filters=f),
    "ec2.DescribeLaunchTemplates": lambda: ec2.describe_launch_templates(Filters=f),
    "ec2.DescribeLaunchTemplateVersions": lambda: ec2.describe_launch_template_versions(Versions=["$Latest"]),
    "autoscaling.DescribeAutoScalingGroups": lambda: asg.describe_auto_scaling_groups(Filters=[{"Name": "tag:infra:stack", "Values": [stack]}]),
    "autoscaling.DescribePolicies": lambda: asg.describe_policies(),
    "iam.GetAccountAuthorizationDetails": lambda: iam.get_account_authorization_details(Filter=["Role", "User", "Group", "LocalManagedPolicy"]),
    "iam.ListInstanceProfiles": lambda: iam.list_instance_profiles(PathPrefix=f"/infra/{stack}/"),
}
out = {"stack": stack}
for name, call in calls.items():
    call()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    out[name] = round(statistics.median(times), 1)
print(json.dumps(out))

#!/usr/bin/env python3
"""Makes objects by hand (boto3, not infra) for the import benchmark
(`discovery_is_linear_and_streams` in infra-aws/tests/aws/import.rs): N security groups in a
new VPC, all named PREFIX-…; prints the VPC id.

    bench/import_bulk.py N PREFIX     (AWS_ENDPOINT_URL etc. from .ci/setup-moto)
"""
import os
import sys

import boto3

n, prefix = int(sys.argv[1]), sys.argv[2]
region = os.environ.get("AWS_REGION", "us-east-1")
ec2 = boto3.client("ec2", region_name=region)
vpc = ec2.create_vpc(
    CidrBlock="10.99.0.0/16",
    TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": f"{prefix}-net"}]}],
)["Vpc"]["VpcId"]
for i in range(n):
    name = f"{prefix}-sg{i:05d}"
    ec2.create_security_group(
        GroupName=name,
        Description=f"{name} by hand",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": name}]}],
    )
print(vpc)

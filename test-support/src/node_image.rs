//! The "Packer build" the production stack's AMI lookup needs on moto, shared by the test
//! binaries that deploy the production stack (`tests/infra`, `tests/reliability`); the same
//! for a user's shell is `.ci/moto-node-image`.

/// Registers an image the stack's AMI lookup (`infra-swarm-node-*`, owned by self) finds, as
/// Packer would have built it, unless there is one.
pub async fn register_node_image(ec2: &aws_sdk_ec2::Client) {
    let found = ec2
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("name")
                .values("infra-swarm-node-*")
                .build(),
        )
        .send()
        .await
        .expect("DescribeImages");
    if !found.images().is_empty() {
        return;
    }
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances");
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    ec2.create_image()
        .instance_id(&instance)
        .name("infra-swarm-node-20261127")
        .send()
        .await
        .expect("CreateImage");
    ec2.terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("TerminateInstances");
}

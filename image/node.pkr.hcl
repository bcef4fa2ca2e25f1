# The node image of the production stack's Swarm clusters (managers, workers): Debian 12 with the
# Docker engine, the node agent at the path the launch templates' user data runs
# (/usr/local/bin/infra-node run) and its systemd unit. The stack's `Ami` lookup finds it by name
# (`infra-swarm-node-*`, newest first). Build it from the repository's root:
#
#   cargo build --release --bin infra-node
#   packer init image/node.pkr.hcl
#   packer build image/node.pkr.hcl
#
# The base is Debian 12 because the agent is built on Debian 12: a binary built here needs this
# glibc (2.36), which the image then has. (The Lambda functions, for Amazon Linux 2023, are
# static instead; see infra::artifacts.)
#
# Against moto, `.ci/moto-node-image` stands in for this build (it registers an image by the same
# name; moto runs nothing). tests/image checks this file: the name pattern, the paths, the files.

packer {
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "The region the image is built and registered in (the stack's region)."
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "node_agent_binary" {
  type        = string
  default     = "target/release/infra-node"
  description = "The node agent, built on Debian 12 by `cargo build --release --bin infra-node` (relative to where packer runs: the repository's root)."
}

locals {
  # the launch templates' user data runs `exec /usr/local/bin/infra-node run`
  agent_path = "/usr/local/bin/infra-node"
  unit_name  = "infra-node.service"
  unit_path  = "/etc/systemd/system/infra-node.service"
  # the stack's Ami lookup: name pattern `infra-swarm-node-*`, newest first
  image_name = "infra-swarm-node-${formatdate("YYYYMMDDhhmmss", timestamp())}"
}

source "amazon-ebs" "swarm_node" {
  ami_name        = local.image_name
  ami_description = "infra Swarm node: Debian 12, Docker engine, infra-node agent"
  region          = var.region
  instance_type   = var.instance_type
  ssh_username    = "admin"

  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    # Debian's own account for its official cloud images
    owners      = ["136693071363"]
    most_recent = true
  }

  # the builder instance, like the nodes, answers IMDSv2 only; the image asks for it too
  imds_support = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  encrypt_boot = true

  tags = {
    Name           = local.image_name
    "infra:image"  = "swarm-node"
    "infra:base"   = "{{ .SourceAMIName }}"
    "infra:agent"  = local.agent_path
  }
}

build {
  name    = "swarm-node"
  sources = ["source.amazon-ebs.swarm_node"]

  provisioner "file" {
    source      = var.node_agent_binary
    destination = "/tmp/infra-node"
  }

  provisioner "file" {
    source      = "${path.root}/files/infra-node.service"
    destination = "/tmp/infra-node.service"
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/install-node.sh"
    execute_command = "sudo env {{ .Vars }} sh -eu '{{ .Path }}'"
    environment_vars = [
      "AGENT_SOURCE=/tmp/infra-node",
      "AGENT_PATH=${local.agent_path}",
      "UNIT_SOURCE=/tmp/infra-node.service",
      "UNIT_PATH=${local.unit_path}",
      "UNIT_NAME=${local.unit_name}",
    ]
  }
}

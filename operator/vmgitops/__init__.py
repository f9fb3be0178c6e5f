"""vmgitops: Argo-CD-style GitOps for plain virtual machines."""

"""Ansible inventories read as Ansible reads them, and mapped to VirtualMachineTargets.

Pure: no Kubernetes, kopf or SSH imports (the command line applies the result)."""

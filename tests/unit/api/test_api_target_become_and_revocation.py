"""spec.become.passwordSecretRef and spec.hostKey.revokedPublicKeys, in the models and CRD."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from vmgitops.api import VirtualMachineTargetSpec
from vmgitops.api.crdgen import generate

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMxcCNOtDTzus+pFhyKct9dJsF2t7UwMVn/cj9b4mHqv"


def spec(**extra: Any) -> dict[str, Any]:
    return {"address": "127.0.10.1", "user": "deploy", **extra}


def test_password_secret_key_defaults_to_password() -> None:
    parsed = VirtualMachineTargetSpec.model_validate(
        spec(become={"passwordSecretRef": {"name": "sudo-pw"}})
    )
    assert parsed.become is not None and parsed.become.password_secret_ref is not None
    assert parsed.become.password_secret_ref.key == "password"
    assert parsed.to_dict()["become"]["passwordSecretRef"] == {
        "name": "sudo-pw",
        "key": "password",
    }


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param({}, id="no-name"),
        pytest.param({"name": "Not_A_Name"}, id="bad-secret-name"),
        pytest.param({"name": "pw", "key": "a/b"}, id="bad-key"),
    ],
)
def test_bad_password_secret_refs_are_refused(ref: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        VirtualMachineTargetSpec.model_validate(spec(become={"passwordSecretRef": ref}))


def test_revoked_keys_are_public_key_lines() -> None:
    parsed = VirtualMachineTargetSpec.model_validate(
        spec(
            hostKey={
                "policy": "CertificateAuthority",
                "caPublicKeys": [KEY],
                "revokedPublicKeys": [KEY],
            }
        )
    )
    assert parsed.host_key.revoked_public_keys == [KEY]
    with pytest.raises(ValidationError):
        VirtualMachineTargetSpec.model_validate(
            spec(hostKey={"policy": "Pinned", "revokedPublicKeys": ["garbage"]})
        )


def test_crd_has_the_new_fields_with_their_defaults() -> None:
    crd = yaml.safe_load(generate()["vmgitops.io_virtualmachinetargets.yaml"])
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    ref = props["become"]["properties"]["passwordSecretRef"]
    assert ref["required"] == ["name"]
    assert ref["properties"]["key"]["default"] == "password"
    assert props["hostKey"]["properties"]["revokedPublicKeys"]["type"] == "array"

"""The credential an input signs its token requests with, from a configured account.

Apart from ``account_check`` so that an input's process imports the certificate signer (and what
it pulls in) only when its account uses a certificate: a client-secret input starts that much sooner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from .graph_client import ClientSecret
from .settings import Account

if TYPE_CHECKING:
    from .certificate import ClientCertificate

Credential = Union[ClientSecret, "ClientCertificate"]


def credential_for(account: Account) -> Credential:
    """The account's credential; a certificate is parsed and checked against its key here."""
    if account.auth_type == "certificate":
        from .certificate import ClientCertificate

        return ClientCertificate(account.certificate, account.private_key)
    return ClientSecret(account.client_secret)

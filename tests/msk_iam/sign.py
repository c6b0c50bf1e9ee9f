"""Prints the MSK IAM token and its expiry (ms) that AWS's Python signer makes for the region,
credentials and signing time given as arguments: REGION ACCESS_KEY SECRET_KEY SESSION_TOKEN|-
UNIX_SECONDS. The signing time is fixed by replacing botocore's clock."""
import datetime
import sys
from unittest import mock

import botocore.auth
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials

region, access_key, secret_key, token, seconds = sys.argv[1:6]
signing_time = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).replace(
    tzinfo=None
)


class Fixed(CredentialProvider):
    def load(self):
        return Credentials(access_key, secret_key, None if token == "-" else token)


with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: signing_time):
    signed, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
        region, Fixed()
    )
print(signed)
print(expiry_ms)

"""
TLS client certificates on every C{ssl:} listener (C{[auth]
tls-client-cert} and C{tls-ca-certs}): the listener asks for (or demands)
a certificate chaining to one of the configured CAs.
"""

from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint

from stompd.errors import ConfigError

_END = "-----END CERTIFICATE-----"


def load_ca_certificates(path: str) -> list:
    """
    The certificates of a PEM bundle, as OpenSSL objects.

    @raise ConfigError: naming the file.
    """
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"auth.tls-ca-certs: cannot read {path}: {e}") from None
    certificates = []
    for part in text.split(_END)[:-1]:
        try:
            certificates.append(ssl.Certificate.loadPEM(part + _END + "\n").original)
        except Exception as e:
            raise ConfigError(f"auth.tls-ca-certs: {path} holds something that is not a PEM certificate: {e}") from None
    if not certificates:
        raise ConfigError(f"auth.tls-ca-certs: no certificate in {path}")
    return certificates


def ask_for_client_certificates(endpoint, mode: str, ca_certificates: list):
    """
    Make an C{ssl:} endpoint verify client certificates: C{"optional"}
    (a client may present none) or C{"required"}. Other endpoints are
    returned as they are.
    """
    if not mode or not isinstance(endpoint, SSL4ServerEndpoint):
        return endpoint
    # The ssl: parser made the options from the key and certificate files;
    # the same, verifying the peer.
    made = endpoint._sslContextFactory
    endpoint._sslContextFactory = ssl.CertificateOptions(
        privateKey=made.privateKey,
        certificate=made.certificate,
        extraCertChain=made.extraCertChain,
        dhParameters=made.dhParameters,
        verify=True,
        caCerts=ca_certificates,
        requireCertificate=mode == "required",
    )
    return endpoint

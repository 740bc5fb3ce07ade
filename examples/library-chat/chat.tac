# Run with:  twistd -ny chat.tac      (from this directory)
# wsgate reads traefik.yml here (or the file named by $CHAT_CONFIG) and serves the chat
# service as chat@internal next to whatever it proxies.
import os
import sys

from twisted.application import service

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chat import ChatFactory  # noqa: E402

from wsgate.config.static_sources import load_static  # noqa: E402
from wsgate.service import build_service  # noqa: E402

config = os.environ.get("CHAT_CONFIG", "traefik.yml")
loaded = load_static([f"--configFile={config}"], os.environ, os.getcwd())
gateway = build_service(loaded)
gateway.register_service("chat", ChatFactory())

application = service.Application("wsgate-chat")
gateway.setServiceParent(application)

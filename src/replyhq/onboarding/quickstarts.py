"""The quickstarts the dashboard shows, one per platform, filled in with the app's id and this
server's address. The SDK key is never known here (keys are stored hashed): snippets carry
`YOUR_SDK_KEY`, which the dashboard replaces with the key it was shown at sign-up or rotation.

Web (script tag, and the headless SDK @replyhq/sdk), Python and curl snippets are run verbatim
by tests against a live server (tests/test_onboarding_quickstarts.py, the headless SDK's by
Node, and the browser test of a newcomer for the script tag);
iOS, Android, React Native and Flutter use those platforms' official Socket.IO clients as
docs/realtime.md describes and are not run here (no such toolchains on this machine).
"""

from __future__ import annotations

from dataclasses import dataclass

from replyhq.web.static import python_sdk_wheel

KEY = "YOUR_SDK_KEY"


@dataclass(frozen=True)
class Step:
    title: str
    language: str
    code: str
    waits_for: str | None  # the checklist step that turns this step green


@dataclass(frozen=True)
class Quickstart:
    platform: str
    title: str
    executed: bool  # run verbatim by the test suite
    docs: str
    steps: tuple[Step, ...]


_WEB = Quickstart(
    "web",
    "Web (script tag)",
    True,
    "/docs/web",
    (
        Step(
            "Add the messenger to your page, before </body>. Add your site's origin to "
            "ALLOWED_ORIGINS on the server.",
            "html",
            '<script src="{url}/widget.js"\n'
            '        data-app-id="{app_id}" data-api-key="' + KEY + '"></script>',
            "sdk_installed",
        ),
        Step(
            "Open the page, click the chat button and send a message.",
            "text",
            "Hello from the web!",
            "first_message",
        ),
    ),
)

_WEB_SDK = Quickstart(
    "web-sdk",
    "Web (headless SDK)",
    True,
    "/docs/sdk",
    (
        Step(
            "No UI of ours: @replyhq/sdk gives you identify, conversations, messages and typing, "
            "and you draw the chat (browsers, React Native, Node 20+). Install it from your "
            "ReplyHQ checkout (make sdk-js builds it).",
            "sh",
            "npm install /path/to/replyhq/sdk/js",
            None,
        ),
        Step(
            "Identify a device and start a conversation with a first message (an ES module: "
            "quickstart.mjs, run with node, or your app's code).",
            "javascript",
            """import {{ ReplyHQ }} from "@replyhq/sdk";

const client = new ReplyHQ({{ url: "{url}", appId: "{app_id}", sdkKey: "{key}", platform: "web" }});
await client.identify({{ name: "Quickstart" }});
const conversation = await client.startConversation({{ body: "Hello from the SDK!" }});
console.log("conversation", conversation.id);
client.close();
""".replace("{key}", KEY),
            "first_message",
        ),
    ),
)

_PYTHON = Quickstart(
    "python",
    "Python",
    True,
    "/docs/realtime#python-sdk",
    (
        Step(
            "Install the SDK (replyhq-sdk; it needs python-socketio and aiohttp): this server"
            " hands out its wheel.",
            "sh",
            "pip install {python_sdk}",
            None,
        ),
        Step(
            "Identify a device and send a first message.",
            "python",
            """import asyncio

from replyhq_sdk import ReplyHQClient


async def main() -> None:
    client = ReplyHQClient("{url}", "{app_id}", "{key}", device_id="python-quickstart")
    await client.identify(name="Quickstart")
    conversation_id = await client.start_conversation()
    await client.connect()
    await client.send(conversation_id, "Hello from Python!")
    await client.close()


asyncio.run(main())
""".replace("{key}", KEY),
            "first_message",
        ),
    ),
)

_CURL = Quickstart(
    "curl",
    "HTTP (curl)",
    True,
    "/docs/api",
    (
        Step(
            "Identify a device.",
            "sh",
            "curl -sf -X POST {url}/v1/identify \\\n"
            "  -H 'X-App-Id: {app_id}' -H 'X-Api-Key: " + KEY + "' -H 'X-Device-Id: curl-1' \\\n"
            "  -H 'Content-Type: application/json' -d '{{\"platform\": \"web\"}}'",
            "sdk_installed",
        ),
        Step(
            "Start a conversation with a first message.",
            "sh",
            "curl -sf -X POST {url}/v1/conversations \\\n"
            "  -H 'X-App-Id: {app_id}' -H 'X-Api-Key: " + KEY + "' -H 'X-Device-Id: curl-1' \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            '  -d \'{{"first_message": {{"body": "Hello from curl!", '
            '"client_msg_id": "curl-1-first"}}}}\'',
            "first_message",
        ),
    ),
)


def _native(platform: str, title: str, language: str, client: str, code: str) -> Quickstart:
    return Quickstart(
        platform,
        title,
        False,
        "/docs/protocol",
        (
            Step(f"Add the official Socket.IO client: {client}.", "text", client, None),
            Step(
                "Identify over HTTP (POST /v1/identify), then connect with the app's keys and "
                "send a message. Not run here: this machine has no " + title + " toolchain; "
                "the protocol is docs/realtime.md's.",
                language,
                code.replace("{key}", KEY),
                "first_message",
            ),
        ),
    )


_IOS = _native(
    "ios",
    "iOS (Swift)",
    "swift",
    "Socket.IO-Client-Swift (Swift Package Manager)",
    """import SocketIO

let manager = SocketManager(socketURL: URL(string: "{url}")!,
                            config: [.forceWebsockets(true)])
let socket = manager.defaultSocket
socket.on(clientEvent: .connect) {{ _, _ in
    socket.emitWithAck("message:send", ["conversation_id": conversationId,
        "body": "Hello from iOS!", "client_msg_id": UUID().uuidString])
        .timingOut(after: 8) {{ ack in
        print(ack)
    }}
}}
socket.connect(withPayload: ["app_id": "{app_id}", "api_key": "{key}",
                             "device_id": deviceId])
""",
)
_ANDROID = _native(
    "android",
    "Android (Kotlin)",
    "kotlin",
    "io.socket:socket.io-client (Gradle)",
    """val options = IO.Options.builder()
    .setTransports(arrayOf(WebSocket.NAME))
    .setAuth(mapOf("app_id" to "{app_id}", "api_key" to "{key}", "device_id" to deviceId))
    .build()
val socket = IO.socket("{url}", options)
socket.on(Socket.EVENT_CONNECT) {{
    val message = JSONObject(mapOf("conversation_id" to conversationId,
        "body" to "Hello from Android!", "client_msg_id" to UUID.randomUUID().toString()))
    socket.emit("message:send", arrayOf(message)) {{ ack -> Log.d("replyhq", ack[0].toString()) }}
}}
socket.connect()
""",
)
_REACT_NATIVE = _native(
    "react-native",
    "React Native",
    "javascript",
    "socket.io-client (npm)",
    """import {{ io }} from "socket.io-client";

const socket = io("{url}", {{
  transports: ["websocket"],
  auth: {{ app_id: "{app_id}", api_key: "{key}", device_id: deviceId }},
}});
socket.on("connect", async () => {{
  const ack = await socket.emitWithAck("message:send", {{
    conversation_id: conversationId, body: "Hello from React Native!",
    client_msg_id: String(Date.now()),
  }});
  console.log(ack);
}});
""",
)
_FLUTTER = _native(
    "flutter",
    "Flutter (Dart)",
    "dart",
    "socket_io_client (pub.dev)",
    """import 'package:socket_io_client/socket_io_client.dart' as IO;

final socket = IO.io('{url}', IO.OptionBuilder()
    .setTransports(['websocket'])
    .setAuth({{'app_id': '{app_id}', 'api_key': '{key}', 'device_id': deviceId}})
    .build());
socket.onConnect((_) {{
  socket.emitWithAck('message:send', {{'conversation_id': conversationId,
      'body': 'Hello from Flutter!',
      'client_msg_id': '${{DateTime.now().microsecondsSinceEpoch}}'}},
      ack: (data) => print(data));
}});
""",
)

QUICKSTARTS: tuple[Quickstart, ...] = (
    _WEB,
    _WEB_SDK,
    _PYTHON,
    _CURL,
    _IOS,
    _ANDROID,
    _REACT_NATIVE,
    _FLUTTER,
)


def for_app(app_id: str, url: str, first: str | None) -> list[Quickstart]:
    """Every quickstart, filled in; the survey's platform first."""
    url = url.rstrip("/")
    wheel = python_sdk_wheel()
    # Without the built wheel (a source checkout before `make`), the SDK's own directory.
    python_sdk = f"{url}/sdk/python/{wheel}" if wheel else "./sdk/python"
    filled = [
        Quickstart(
            q.platform,
            q.title,
            q.executed,
            q.docs,
            tuple(
                Step(
                    s.title,
                    s.language,
                    s.code.format(app_id=app_id, url=url, python_sdk=python_sdk),
                    s.waits_for,
                )
                for s in q.steps
            ),
        )
        for q in QUICKSTARTS
    ]
    return sorted(filled, key=lambda q: q.platform != first)

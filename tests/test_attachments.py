"""Attachments over HTTP: images and files both ways, shown inline with a thumbnail or as a
download; the size limit and the type (read from the bytes) refused with a clear 4xx that
changes nothing; sends keep their idempotency and gap-free seq; downloads only through signed,
short-lived URLs, and nobody reaches another person's or another app's file by its id."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from sqlalchemy import text

from replyhq.attachments import signing
from replyhq.attachments.storage import local_root
from replyhq.runtime import Runtime
from tests.attachment_support import image_size, jpeg, pdf, png
from tests.conftest import MakeTenant, SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder
from tests.staff import secret, signed_in
from tests.test_realtime_staff import agent_socket, device_socket

MB = 1024 * 1024


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    cid: object,
    data: bytes | AsyncIterator[bytes],
    filename: str = "photo.png",
    *,
    admin: bool = False,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    base = "/admin/api" if admin else "/v1"
    return await client.post(
        f"{base}/conversations/{cid}/attachments",
        params={"filename": filename},
        headers={**headers, "Content-Type": content_type},
        content=data,
    )


async def _stored(runtime: Runtime, tenant: Tenant) -> int:
    async with runtime.db.tenant_session(tenant.id) as session:
        count = await session.scalar(text("SELECT count(*) FROM attachments"))
    return int(count or 0)


def _files(runtime: Runtime) -> list[Path]:
    root = local_root(runtime.settings)
    return [p for p in root.rglob("*") if p.is_file()]


async def _conversation(client: httpx.AsyncClient, tenant: Tenant, device: str) -> str:
    await identify(client, tenant, device, user_id=device, user_hash=tenant.user_hash(device))
    return str((await start_conversation(client, tenant, device, body="Hi"))["id"])


async def test_an_image_both_ways_inline_with_thumbnail(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    cid = await _conversation(client, tenant, "ann")
    picture = png(800, 600)
    up = await upload(client, tenant.sdk("ann"), cid, picture, "../../etc/Screenshot.png")
    assert up.status_code == 201, up.text
    attachment = up.json()
    assert attachment["kind"] == "image" and attachment["content_type"] == "image/png"
    assert (attachment["width"], attachment["height"], attachment["size"]) == (
        800,
        600,
        len(picture),
    )
    assert attachment["filename"] == "Screenshot.png"  # no folders
    assert attachment["message_id"] is None

    # Sent with a message that has no text: the agent sees it with its URLs, and both work.
    sent = await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk("ann"),
        json={"body": "", "client_msg_id": "with-image", "attachment_ids": [attachment["id"]]},
    )
    assert sent.status_code == 201, sent.text
    message = sent.json()
    assert message["seq"] == 2 and message["body"] == ""
    assert [a["id"] for a in message["attachments"]] == [attachment["id"]]

    history = await client.get(f"/admin/api/conversations/{cid}/messages", headers=secret(tenant))
    (seen,) = history.json()["items"][1]["attachments"]
    assert seen["message_id"] == message["id"]
    full = await client.get(seen["url"])
    assert full.status_code == 200 and full.content == picture
    assert full.headers["content-type"] == "image/png"
    assert full.headers["content-disposition"].startswith("inline")
    assert full.headers["x-content-type-options"] == "nosniff"
    thumb = await client.get(seen["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert image_size(thumb.content) == (320, 240)
    assert len(thumb.content) < len(picture)

    # The agent answers with a JPEG; the end user sees it in their history.
    photo = jpeg()
    agent_up = await upload(client, secret(tenant), cid, photo, "label.jpg", admin=True)
    assert agent_up.status_code == 201, agent_up.text
    reply = await client.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=secret(tenant),
        json={
            "body": "Here is the label",
            "client_msg_id": "a1",
            "attachment_ids": [agent_up.json()["id"]],
        },
    )
    assert reply.status_code == 201, reply.text
    mine = await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("ann"))
    items = mine.json()["items"]
    assert [len(m["attachments"]) for m in items] == [0, 1, 1]
    (theirs,) = items[2]["attachments"]
    assert theirs["kind"] == "image" and theirs["content_type"] == "image/jpeg"
    assert (await client.get(theirs["url"])).content == photo
    assert image_size((await client.get(theirs["thumbnail_url"])).content) == (320, 240)


async def test_a_file_is_a_download_not_an_image(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cid = await _conversation(client, tenant, "bea")
    document = pdf(50_000)
    # Named and declared as an image, it is what its bytes say: a PDF, a plain file.
    up = await upload(
        client, secret(tenant), cid, document, "invoice.png", admin=True, content_type="image/png"
    )
    assert up.status_code == 201, up.text
    attachment = up.json()
    assert attachment["content_type"] == "application/pdf" and attachment["kind"] == "file"
    assert attachment["thumbnail_url"] is None and attachment["width"] is None
    sent = await client.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=secret(tenant),
        json={"body": "Your invoice", "client_msg_id": "inv", "attachment_ids": [attachment["id"]]},
    )
    assert sent.status_code == 201
    items = (
        await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("bea"))
    ).json()["items"]
    (file,) = items[-1]["attachments"]
    download = await client.get(file["url"])
    assert download.status_code == 200 and download.content == document
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''invoice.png"
    # A plain file has no thumbnail to fetch.
    thumb_url = signing.url(tenant.id, uuid.UUID(file["id"]), "thumbnail", signing.expiry())
    assert (await client.get(thumb_url)).status_code == 404


async def test_refused_uploads_change_nothing(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    cid = await _conversation(client, tenant, "cat")
    files_before = _files(runtime)
    cases: list[tuple[bytes, int, str]] = [
        (b"MZ\x90\x00" + b"\x00" * 4000, 400, "UNSUPPORTED_ATTACHMENT_TYPE"),  # a Windows program
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 600, 400, "UNSUPPORTED_ATTACHMENT_TYPE"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>\x00",
            400,
            "UNSUPPORTED_ATTACHMENT_TYPE",
        ),
        (png()[:200], 400, "INVALID_IMAGE"),  # a PNG's signature, not a whole image
        (b"", 400, "EMPTY_ATTACHMENT"),
    ]
    for data, status, code in cases:
        response = await upload(client, tenant.sdk("cat"), cid, data, "cute.png")
        assert response.status_code == status, (code, response.text)
        body = response.json()
        assert body["code"] == code and body["error"], body

    # Over the limit: refused from Content-Length before a byte is read ...
    too_big = b"%PDF-1.4\n" + b"0" * (10 * MB)
    declared = await upload(client, tenant.sdk("cat"), cid, too_big, "big.pdf")
    assert declared.status_code == 413, declared.text
    assert declared.json()["code"] in ("PAYLOAD_TOO_LARGE", "ATTACHMENT_TOO_LARGE")

    # ... and while it streams when the size is not declared (chunked).
    async def chunks() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4\n"
        for _ in range(11):
            yield b"0" * MB

    streamed = await upload(client, tenant.sdk("cat"), cid, chunks(), "big.pdf")
    assert streamed.status_code == 413, streamed.text
    assert set(streamed.json()) >= {"error", "code"}

    # Exactly at the limit is fine.
    at_limit = b"%PDF-1.4\n" + b"0" * (10 * MB - 9)
    assert len(at_limit) == 10 * MB
    ok = await upload(client, tenant.sdk("cat"), cid, at_limit, "limit.pdf")
    assert ok.status_code == 201, ok.text

    # Unknown conversation: 404, nothing stored.
    unknown = await upload(client, tenant.sdk("cat"), uuid.uuid4(), png())
    assert unknown.status_code == 404 and unknown.json()["code"] == "CONVERSATION_NOT_FOUND"

    assert await _stored(runtime, tenant) == 1  # the one at the limit
    new_files = set(_files(runtime)) - set(files_before)
    assert len(new_files) == 1 and next(iter(new_files)).stat().st_size == 10 * MB
    spool = local_root(runtime.settings) / ".uploads"
    assert list(spool.iterdir()) == []


async def test_sends_with_attachments_stay_idempotent_and_gap_free(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    cid = await _conversation(client, tenant, "dan")
    first = (await upload(client, tenant.sdk("dan"), cid, png(40, 30))).json()
    second = (await upload(client, tenant.sdk("dan"), cid, pdf(), "a.pdf")).json()
    payload = {
        "body": "two files",
        "client_msg_id": "m-files",
        "attachment_ids": [second["id"], first["id"]],
    }
    url = f"/v1/conversations/{cid}/messages"
    sent = await client.post(url, headers=tenant.sdk("dan"), json=payload)
    again = await client.post(url, headers=tenant.sdk("dan"), json=payload)
    assert (sent.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == sent.json()["id"]
    ids = [a["id"] for a in again.json()["attachments"]]
    assert sorted(ids) == sorted([first["id"], second["id"]])
    assert [a["id"] for a in sent.json()["attachments"]] == [second["id"], first["id"]]

    # A sent attachment cannot be sent again; the refusal stores no message and takes no seq.
    reused = await client.post(
        url,
        headers=tenant.sdk("dan"),
        json={"body": "again", "client_msg_id": "m-reuse", "attachment_ids": [first["id"]]},
    )
    assert reused.status_code == 400 and reused.json()["code"] == "INVALID_ATTACHMENT"
    plain = await client.post(
        url, headers=tenant.sdk("dan"), json={"body": "x", "client_msg_id": "p"}
    )
    assert plain.json()["seq"] == sent.json()["seq"] + 1

    # Neither body nor attachments: still a clear 400.
    empty = await client.post(url, headers=tenant.sdk("dan"), json={"client_msg_id": "e"})
    assert empty.status_code == 400 and empty.json()["code"] == "VALIDATION_ERROR"
    # Nor can it start a conversation: refused, and no conversation is created.
    listed = await client.get("/v1/conversations", headers=tenant.sdk("dan"))
    start = await client.post(
        "/v1/conversations",
        headers=tenant.sdk("dan"),
        json={
            "first_message": {"body": "x", "client_msg_id": "f", "attachment_ids": [first["id"]]}
        },
    )
    assert start.status_code == 400 and start.json()["code"] == "INVALID_ATTACHMENT"
    after = await client.get("/v1/conversations", headers=tenant.sdk("dan"))
    assert len(after.json()["items"]) == len(listed.json()["items"])


async def test_a_conversation_starts_with_a_file(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Uploaded before there is a conversation (POST /v1/attachments), a file is the first
    message of a new one; only its uploader can see or send it until then."""
    for device in ("eva", "ivo"):
        await identify(client, tenant, device, user_id=device, user_hash=tenant.user_hash(device))
    picture = png(64, 48)
    up = await client.post(
        "/v1/attachments",
        params={"filename": "broken.png"},
        headers=tenant.sdk("eva"),
        content=picture,
    )
    assert up.status_code == 201, up.text
    attachment = up.json()
    assert attachment["conversation_id"] is None and attachment["message_id"] is None
    mine = await client.get(f"/v1/attachments/{attachment['id']}", headers=tenant.sdk("eva"))
    assert mine.status_code == 200
    theirs = await client.get(f"/v1/attachments/{attachment['id']}", headers=tenant.sdk("ivo"))
    assert theirs.status_code == 404
    first = {"body": "", "client_msg_id": "first-file", "attachment_ids": [attachment["id"]]}
    stolen = await client.post(
        "/v1/conversations", headers=tenant.sdk("ivo"), json={"first_message": first}
    )
    assert stolen.status_code == 400 and stolen.json()["code"] == "INVALID_ATTACHMENT"

    started = await client.post(
        "/v1/conversations", headers=tenant.sdk("eva"), json={"first_message": first}
    )
    assert started.status_code == 201, started.text
    conversation = started.json()
    message = conversation["last_message"]
    assert message["seq"] == 1 and message["body"] == ""
    (sent,) = message["attachments"]
    assert sent["id"] == attachment["id"] and sent["conversation_id"] == conversation["id"]
    assert (await client.get(sent["thumbnail_url"])).status_code == 200
    again = await client.post(
        "/v1/conversations", headers=tenant.sdk("eva"), json={"first_message": first}
    )
    assert again.status_code == 200 and again.json()["id"] == conversation["id"]
    assert [a["id"] for a in again.json()["last_message"]["attachments"]] == [attachment["id"]]

    history = await client.get(
        f"/admin/api/conversations/{conversation['id']}/messages", headers=secret(tenant)
    )
    (seen,) = history.json()["items"][0]["attachments"]
    assert (await client.get(seen["url"])).content == picture

    # An upload made before is also sendable in an existing conversation of its uploader.
    document = await client.post("/v1/attachments", headers=tenant.sdk("eva"), content=pdf())
    later = await client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=tenant.sdk("eva"),
        json={"client_msg_id": "later", "attachment_ids": [document.json()["id"]]},
    )
    assert later.status_code == 201, later.text
    assert later.json()["attachments"][0]["conversation_id"] == conversation["id"]


async def test_a_visitor_who_signs_in_keeps_their_unsent_uploads(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant, "lea-phone")  # an anonymous visitor
    upfront = await client.post("/v1/attachments", headers=tenant.sdk("lea-phone"), content=pdf())
    assert upfront.status_code == 201, upfront.text
    await identify(client, tenant, "lea-phone", user_id="lea", user_hash=tenant.user_hash("lea"))
    first = {"client_msg_id": "after-sign-in", "attachment_ids": [upfront.json()["id"]]}
    started = await client.post(
        "/v1/conversations", headers=tenant.sdk("lea-phone"), json={"first_message": first}
    )
    assert started.status_code == 201, started.text
    assert started.json()["last_message"]["attachments"][0]["id"] == upfront.json()["id"]


async def test_nobody_reaches_another_persons_or_apps_files(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    ann_cid = await _conversation(client, acme, "ann")
    bob_cid = await _conversation(client, acme, "bob")
    eve_cid = await _conversation(client, other, "eve")
    pending = (await upload(client, acme.sdk("ann"), ann_cid, png())).json()
    sent = (await upload(client, acme.sdk("ann"), ann_cid, pdf(), "x.pdf")).json()
    ok = await client.post(
        f"/v1/conversations/{ann_cid}/messages",
        headers=acme.sdk("ann"),
        json={"body": "here", "client_msg_id": "s", "attachment_ids": [sent["id"]]},
    )
    assert ok.status_code == 201
    agent_pending = (await upload(client, secret(acme), ann_cid, pdf(), admin=True)).json()

    # Ann may fetch her own (fresh URLs); Bob, Eve and the other app's staff may not.
    for attachment in (pending, sent):
        own = await client.get(f"/v1/attachments/{attachment['id']}", headers=acme.sdk("ann"))
        assert own.status_code == 200 and own.json()["id"] == attachment["id"]
        for headers in (acme.sdk("bob"), other.sdk("eve"), secret(other)):
            path = "/admin/api" if "X-Device-Id" not in headers else "/v1"
            got = await client.get(f"{path}/attachments/{attachment['id']}", headers=headers)
            assert got.status_code == 404, (headers, got.text)
            assert got.json()["code"] == "ATTACHMENT_NOT_FOUND"
    # An agent's upload not yet sent is not the end user's to see.
    hidden = await client.get(f"/v1/attachments/{agent_pending['id']}", headers=acme.sdk("ann"))
    assert hidden.status_code == 404
    assert (
        await client.get(f"/admin/api/attachments/{sent['id']}", headers=secret(acme))
    ).status_code == 200

    # Bob cannot upload to Ann's conversation, nor Eve to Acme's.
    assert (await upload(client, acme.sdk("bob"), ann_cid, png())).status_code == 404
    assert (await upload(client, other.sdk("eve"), ann_cid, png())).status_code == 404
    assert (await upload(client, secret(other), ann_cid, png(), admin=True)).status_code == 404

    # Nor send Ann's uploads: in his own conversation, or another app's.
    for headers, cid in ((acme.sdk("bob"), bob_cid), (other.sdk("eve"), eve_cid)):
        stolen = await client.post(
            f"/v1/conversations/{cid}/messages",
            headers=headers,
            json={"body": "mine", "client_msg_id": "steal", "attachment_ids": [pending["id"]]},
        )
        assert stolen.status_code == 400 and stolen.json()["code"] == "INVALID_ATTACHMENT"
    stolen = await client.post(
        f"/admin/api/conversations/{eve_cid}/messages",
        headers=secret(other),
        json={"body": "mine", "client_msg_id": "steal", "attachment_ids": [agent_pending["id"]]},
    )
    assert stolen.status_code == 400
    # The agent cannot send the end user's pending upload as theirs either.
    as_agent = await client.post(
        f"/admin/api/conversations/{ann_cid}/messages",
        headers=secret(acme),
        json={"body": "x", "client_msg_id": "x", "attachment_ids": [pending["id"]]},
    )
    assert as_agent.status_code == 400
    for headers, cid in ((acme.sdk("bob"), bob_cid), (other.sdk("eve"), eve_cid)):
        history = await client.get(f"/v1/conversations/{cid}/messages", headers=headers)
        assert [m["body"] for m in history.json()["items"]] == ["Hi"]

    # Signed URLs: tampered, moved to another app or attachment, or expired: refused.
    good = sent["url"]
    assert (await client.get(good)).status_code == 200
    attachment_id = uuid.UUID(sent["id"])
    expires = signing.expiry()
    signature = good.split("signature=")[1]
    forged = [
        good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        f"/files/{other.id}/{attachment_id}/original?expires={expires}&signature={signature}",
        f"/files/{acme.id}/{pending['id']}/original?expires={expires}&signature={signature}",
        good.replace(
            f"expires={sent['url'].split('expires=')[1].split('&')[0]}", "expires=9999999999"
        ),
    ]
    for url in forged:
        refused = await client.get(url)
        assert refused.status_code == 403 and refused.json()["code"] == "INVALID_SIGNATURE", url
    old = signing.url(acme.id, attachment_id, "original", int(time.time()) - 1)
    expired = await client.get(old)
    assert expired.status_code == 403 and expired.json()["code"] == "URL_EXPIRED"
    # A valid signature for an id of another app finds nothing there (row-level security).
    moved = signing.url(other.id, attachment_id, "original", signing.expiry())
    assert (await client.get(moved)).status_code == 404


async def test_attachments_reach_the_other_side_live_and_by_sync(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    sam = await signed_in(socket_server.runtime, http, acme, "AGENT", name="Sam")
    cid = await _conversation(http, acme, "ann")
    await _conversation(http, acme, "bob")
    eve_cid = await _conversation(http, other, "eve")
    agent = await agent_socket(socket_server, sam, recorders)
    ann = await device_socket(socket_server, acme, "ann", recorders)
    bob = await device_socket(socket_server, acme, "bob", recorders)
    eve = await device_socket(socket_server, other, "eve", recorders)

    picture = png(64, 48)
    uploaded = (await upload(http, acme.sdk("ann"), cid, picture)).json()
    # Bob's socket, or another app's, cannot send Ann's upload; nothing is stored.
    for socket, conversation in ((bob, cid), (eve, eve_cid)):
        refused = await socket.call(
            "message:send",
            {
                "conversation_id": conversation,
                "client_msg_id": "x",
                "attachment_ids": [uploaded["id"]],
            },
        )
        assert refused["ok"] is False, refused
        assert refused["code"] in ("CONVERSATION_NOT_FOUND", "INVALID_ATTACHMENT")

    ack = await ann.call(
        "message:send",
        {"conversation_id": cid, "client_msg_id": "pic", "attachment_ids": [uploaded["id"]]},
    )
    assert ack["ok"] is True and ack["created"] is True, ack
    assert ack["message"]["seq"] == 2
    (arrived,) = await agent.wait_for("message:new")
    (live,) = arrived["message"]["attachments"]
    assert live["id"] == uploaded["id"] and live["kind"] == "image"
    assert (await http.get(live["thumbnail_url"])).status_code == 200
    assert (await http.get(live["url"])).content == picture

    # The agent answers with a file over the socket; Ann hears it live and finds it by sync.
    document = pdf()
    mine = (await upload(http, sam.auth(), cid, document, "guide.pdf", admin=True)).json()
    reply = await agent.call(
        "message:send",
        {
            "conversation_id": cid,
            "body": "The guide",
            "client_msg_id": "g",
            "attachment_ids": [mine["id"]],
        },
    )
    assert reply["ok"] is True, reply
    events = await ann.wait_for("message:new", 2)
    assert [e["message"]["attachments"][0]["filename"] for e in events] == [
        "photo.png",
        "guide.pdf",
    ]
    synced = await ann.call("sync", {"conversation_id": cid, "after_seq": 1})
    assert [[a["id"] for a in m["attachments"]] for m in synced["messages"]] == [
        [uploaded["id"]],
        [mine["id"]],
    ]
    assert (await http.get(synced["messages"][1]["attachments"][0]["url"])).content == document
    staff_sync = await agent.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert len(staff_sync["messages"][1]["attachments"]) == 1
    # Nobody else heard of it, nor can sync it.
    foreign = await eve.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert foreign["ok"] is False
    assert (await bob.call("sync", {"conversation_id": cid, "after_seq": 0}))["ok"] is False
    for socket in (bob, eve):
        assert socket.events["message:new"] == []


async def test_uploads_never_sent_are_pruned(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    from replyhq.attachments.tasks import prune_unsent
    from replyhq.jobs.registry import JobRun

    cid = await _conversation(client, tenant, "fay")
    old = (await upload(client, tenant.sdk("fay"), cid, png(30, 30))).json()
    fresh = (await upload(client, tenant.sdk("fay"), cid, pdf(), "f.pdf")).json()
    sent = (await upload(client, tenant.sdk("fay"), cid, pdf(), "s.pdf")).json()
    await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk("fay"),
        json={"client_msg_id": "s", "attachment_ids": [sent["id"]]},
    )
    root = local_root(runtime.settings)
    async with runtime.db.system_session() as session:
        await session.execute(
            text(
                "UPDATE attachments SET created_at = now() - interval '2 days' WHERE id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(old["id"]), uuid.UUID(sent["id"])]},
        )
    await prune_unsent.func(JobRun(1, "attachments.prune", 1, runtime), timestamp=0)
    for attachment, kept in ((old, False), (fresh, True), (sent, True)):
        found = await client.get(f"/v1/attachments/{attachment['id']}", headers=tenant.sdk("fay"))
        assert found.status_code == (200 if kept else 404)
        assert (root / str(tenant.id) / attachment["id"] / "original").exists() is kept
    assert not (root / str(tenant.id) / old["id"] / "thumbnail").exists()


async def _purge_jobs_waiting(runtime: Runtime) -> int:
    async with runtime.db.system_session() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name = 'attachments.purge' AND status = 'todo'"
            )
        )
    return int(count or 0)


async def test_stored_files_go_with_the_conversation_or_app_that_owned_them(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    """No route deletes an app or a conversation: an operator does, in SQL, and the cascade
    takes the attachments' rows. Their files and thumbnails then leave the storage by a job
    (never in the deleting transaction), the other conversation's staying until the app goes."""
    from replyhq.attachments.tasks import purge_deleted
    from replyhq.jobs.registry import JobRun

    tenant = await make_tenant("Leaving")
    first = await _conversation(client, tenant, "hal")
    image = (await upload(client, tenant.sdk("hal"), first, png(40, 30))).json()
    await client.post(
        f"/v1/conversations/{first}/messages",
        headers=tenant.sdk("hal"),
        json={"client_msg_id": "img", "attachment_ids": [image["id"]]},
    )
    unsent = (await upload(client, tenant.sdk("hal"), first, pdf(), "u.pdf")).json()
    second = str((await start_conversation(client, tenant, "hal", body="Again"))["id"])
    kept = (await upload(client, secret(tenant), second, pdf(), "k.pdf", admin=True)).json()
    app_root = local_root(runtime.settings) / str(tenant.id)

    def stored() -> list[str]:
        return sorted(str(p.relative_to(app_root)) for p in app_root.rglob("*") if p.is_file())

    assert stored() == sorted(
        [
            f"{image['id']}/original",
            f"{image['id']}/thumbnail",
            f"{unsent['id']}/original",
            f"{kept['id']}/original",
        ]
    )
    run = JobRun(1, "attachments.purge", 1, runtime)
    await purge_deleted.func(run)  # whatever earlier tests queued
    async with runtime.db.system_session() as session:
        await session.execute(
            text("DELETE FROM conversations WHERE id = :id"), {"id": uuid.UUID(first)}
        )
    assert len(stored()) == 4  # the deletion itself touched no file
    assert await _purge_jobs_waiting(runtime) == 1
    await purge_deleted.func(run)
    assert stored() == [f"{kept['id']}/original"]
    assert not (app_root / image["id"]).exists()  # no empty folders left

    # A deletion that rolls back queues nothing.
    with contextlib.suppress(LookupError):
        async with runtime.db.system_session() as session:
            await session.execute(
                text("DELETE FROM conversations WHERE id = :id"), {"id": uuid.UUID(second)}
            )
            raise LookupError
    async with runtime.db.system_session() as session:
        assert await session.scalar(text("SELECT count(*) FROM attachment_deletions")) == 0

    async with runtime.db.system_session() as session:
        await session.execute(text("DELETE FROM apps WHERE id = :id"), {"id": tenant.id})
    await purge_deleted.func(run)
    assert not app_root.exists()


async def test_a_real_server_streams_an_upload_past_the_api_body_limit(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Through `serve`'s whole stack (uvicorn, the Socket.IO wrapper's body limit included): an
    upload of several MB, sent in chunks, is taken; one over the limit is refused."""
    cid = await _conversation(http, tenant, "gus")
    document = pdf(3 * MB)

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    up = await upload(http, tenant.sdk("gus"), cid, chunks(document), "big.pdf")
    assert up.status_code == 201, up.text
    assert (await http.get(up.json()["url"])).content == document
    # Over the limit by its Content-Length: answered at once, before the body is sent (an
    # HTTP client still sending would see the connection close under it).
    host, port = socket_server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in tenant.sdk("gus").items())
    writer.write(
        f"POST /v1/conversations/{cid}/attachments HTTP/1.1\r\nHost: {host}\r\n{head}"
        f"Content-Type: application/pdf\r\nContent-Length: {10 * MB + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"code": "PAYLOAD_TOO_LARGE"' in answer

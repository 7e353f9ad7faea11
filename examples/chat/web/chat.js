// The chat client: one room (`?room=NAME`, default `lobby`), over the
// WebSocket at /ws of this same origin; history from /api/history.
//
// No message the server acknowledged is missed: when the socket (re)opens
// and the server says hello (this client is subscribed from then on), the
// client asks history for the room's last messages, which include every
// message acknowledged before (history answers in step with the broker),
// and shows those it has not seen. Messages sent but not acknowledged when
// the socket closed are sent again, with the same id (stored once).
"use strict";

const room = new URLSearchParams(location.search).get("room") || "lobby";
const CATCH_UP = 100;
const list = document.getElementById("messages");
const statusEl = document.getElementById("status");
const userEl = document.getElementById("user");
const textEl = document.getElementById("text");
document.getElementById("room").textContent = room;
userEl.value = localStorage.getItem("chat.user") || "";

// What tests (and curious users) can look at: `window.chat`.
const chat = (window.chat = {
  room,
  seen: new Set(), // ids shown
  acked: new Set(), // ids the server acknowledged
  pending: new Map(), // id -> what was sent, until acknowledged
  connects: 0,
  socket: null,
});

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function show(m, pending) {
  let li = list.querySelector(`li[data-id="${m.id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.id = m.id;
    const user = document.createElement("span");
    user.className = "user";
    user.textContent = m.user;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    li.append(user, text);
    list.append(li);
  }
  li.classList.toggle("pending", !!pending);
  if (!pending) chat.seen.add(m.id);
}

async function catchUp() {
  const url = `/api/history?room=${encodeURIComponent(room)}&limit=${CATCH_UP}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const answer = await fetch(url);
      if (answer.ok) {
        for (const m of (await answer.json()).messages) show(m);
        return;
      }
    } catch (_) {
      // history restarting: try again
    }
    await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
  }
  setStatus("degraded", "live (history unavailable)");
}

function transmit(payload) {
  if (chat.socket && chat.socket.readyState === WebSocket.OPEN) {
    chat.socket.send(JSON.stringify(payload));
  }
}

let retry = 0;
function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws?room=${encodeURIComponent(room)}`);
  chat.socket = socket;
  socket.onmessage = async (event) => {
    const f = JSON.parse(event.data);
    if (f.type === "hello") {
      retry = 0;
      chat.connects++;
      setStatus("live", "live");
      for (const p of chat.pending.values()) transmit(p);
      await catchUp();
    } else if (f.type === "message") {
      show(f.message);
    } else if (f.type === "ack") {
      chat.pending.delete(f.id);
      chat.acked.add(f.id);
    } else if (f.type === "error") {
      if (f.id) chat.pending.delete(f.id);
      setStatus("error", f.error);
    }
  };
  socket.onclose = () => {
    setStatus("reconnecting", "reconnecting…");
    const wait = Math.min(2000, 100 * 2 ** retry++);
    setTimeout(connect, wait);
  };
}

document.getElementById("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = userEl.value.trim();
  const text = textEl.value.trim();
  if (!user || !text) return;
  localStorage.setItem("chat.user", user);
  const payload = { type: "send", id: newId(), user, text };
  chat.pending.set(payload.id, payload);
  show({ id: payload.id, user, text }, true);
  transmit(payload);
  textEl.value = "";
});

connect();

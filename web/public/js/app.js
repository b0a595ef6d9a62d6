// The web client's UI: renders what a ChatClient (chat-protocol.js) knows and turns clicks
// into its calls. All protocol logic lives in chat-protocol.js; user text only ever goes
// into the page as text (textContent), never as HTML.

import { config } from '../config.js';
import { ChatClient, ChatError } from './chat-protocol.js';

const SESSION_KEY = 'chat.session';
const TOAST_MS = 8000;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) if (child != null) node.append(child);
  return node;
};

/** @type {ChatClient|null} */
let client = null;
/** @type {string|null} */
let current = null;
/** The message being edited in the composer: {channelId, messageId}. */
let editing = null;
/** Files uploaded for the next message: {attachment?, name, state: 'uploading'|'ready'}. */
let drafts = [];
/** The message whose Delete was clicked once (a second click deletes it). */
let armedDelete = null;
/** Errors of actions the client makes by itself: logged, not shown. */
const BACKGROUND_ACTIONS = new Set(['markRead', 'typing', 'heartbeat', 'getPresence', 'sync']);

function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null');
  } catch {
    return null;
  }
}

function saveSession(session) {
  if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else localStorage.removeItem(SESSION_KEY);
}

// ------------------------------------------------------------------ sign in

function showSignIn(message = '') {
  $('chat').hidden = true;
  $('signin').hidden = false;
  $('signin-form').querySelector('[data-testid="signin-error"]').textContent = message;
  $('signin-form').username.focus();
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const mode = event.submitter?.value ?? 'signin';
  const error = form.querySelector('[data-testid="signin-error"]');
  error.textContent = '';
  const candidate = newClient(null);
  for (const button of form.querySelectorAll('button')) button.disabled = true;
  try {
    if (mode === 'signup') await candidate.signUp(form.username.value, form.password.value);
    else await candidate.signIn(form.username.value, form.password.value);
    form.password.value = '';
    await enter(candidate);
  } catch (err) {
    error.textContent = err instanceof ChatError ? err.message : String(err);
  } finally {
    for (const button of form.querySelectorAll('button')) button.disabled = false;
  }
});

function newClient(session) {
  const c = new ChatClient({ apiBaseUrl: config.apiBaseUrl, webSocketUrl: config.webSocketUrl, session });
  c.addEventListener('session', ({ detail }) => {
    saveSession(detail.session);
    if (!detail.session && client === c) {
      client.stop();
      client = null;
      showSignIn('Your session has ended. Please sign in again.');
    }
  });
  return c;
}

async function enter(c) {
  client = c;
  current = null;
  c.addEventListener('status', ({ detail }) => renderStatus(detail));
  c.addEventListener('channels', () => renderChannels());
  c.addEventListener('timeline', ({ detail }) => {
    if (detail.channelId !== current) return;
    renderMessages();
    markRead();
  });
  c.addEventListener('outbox', ({ detail }) => detail.channelId === current && renderMessages());
  c.addEventListener('receipts', ({ detail }) => detail.channelId === current && renderMessages());
  c.addEventListener('typing', ({ detail }) => detail.channelId === current && renderTyping());
  c.addEventListener('presence', () => {
    renderChannels();
  });
  c.addEventListener('error', ({ detail }) => {
    if (BACKGROUND_ACTIONS.has(detail.error.action)) console.warn('chat:', detail.error);
    else toast(detail.error);
  });
  $('signin').hidden = true;
  $('chat').hidden = false;
  $('me').textContent = c.userId;
  $('my-avatar').textContent = c.userId.slice(0, 1).toUpperCase();
  renderConversation();
  await c.start();
}

$('signout').addEventListener('click', () => {
  const c = client;
  client = null;
  c?.signOut();
  showSignIn();
});

$('reconnect').addEventListener('click', () => client?.reconnectNow());
window.addEventListener('online', () => client?.reconnectNow());

// ------------------------------------------------------------------ channels

function channelTitle(channel) {
  return channel.kind === 'direct' ? (channel.peer ?? channel.channelId) : (channel.name ?? channel.channelId);
}

function renderChannels() {
  const nav = $('channels');
  const list = client?.channelList() ?? [];
  nav.replaceChildren(
    ...list.map((channel) => {
      const title = channelTitle(channel);
      const count = channel.channelId === current ? 0 : channel.unread;
      const button = el(
        'button',
        { type: 'button', className: 'channel', onclick: () => select(channel.channelId) },
        el('span', { className: `avatar ${channel.kind}`, textContent: title.slice(0, 1).toUpperCase() }),
        el(
          'span',
          { className: 'channel-text' },
          el('span', { className: 'channel-name', textContent: title }),
          el('span', {
            className: 'channel-meta',
            textContent:
              (channel.kind === 'group' ? `Group · ${channel.memberCount} members` : 'Direct chat') +
              (channel.muted ? ' · muted' : ''),
          }),
        ),
        count ? badge(count) : null,
      );
      const presence = channel.peer ? client.presence.get(channel.peer)?.status : undefined;
      if (presence) button.dataset.presence = presence;
      button.dataset.testid = 'channel-item';
      button.dataset.channelId = channel.channelId;
      button.setAttribute('aria-current', String(channel.channelId === current));
      return button;
    }),
  );
  if (current) renderConversation();
}

function badge(count) {
  const node = el('span', { className: 'badge', textContent: String(count), title: `${count} unread` });
  node.dataset.testid = 'unread';
  return node;
}

/** The open channel is read up to its newest message, while the page is visible. */
function markRead() {
  if (current && client && document.visibilityState === 'visible') client.markRead(current);
}

document.addEventListener('visibilitychange', markRead);

async function select(channelId) {
  if (current && current !== channelId) client.stopTyping(current);
  if (current !== channelId) {
    if (editing) stopEditing();
    drafts = [];
    renderDrafts();
  }
  current = channelId;
  $('members').hidden = true;
  renderChannels();
  renderConversation();
  try {
    await client.open(channelId);
    markRead();
  } catch (err) {
    toast(err);
  }
  $('composer').text.focus();
}


$('direct-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    const view = await client.openDirect(form.user.value.trim().toLowerCase());
    form.reset();
    await select(view.channelId);
  } catch (err) {
    toast(err);
  }
});

$('group-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const members = splitNames(form.members.value);
  try {
    const view = await client.createGroup(form.name.value.trim(), members);
    form.reset();
    form.closest('details').open = false;
    await select(view.channelId);
  } catch (err) {
    toast(err);
  }
});

function splitNames(text) {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

// ------------------------------------------------------------------ conversation

function renderConversation() {
  const channel = current ? client?.channels.get(current) : null;
  $('composer').hidden = !current;
  $('members-toggle').hidden = channel?.kind !== 'group';
  $('mute-toggle').hidden = !channel;
  $('mute-toggle').textContent = channel?.muted ? 'Unmute' : 'Mute';
  $('mute-toggle').title = channel?.muted ? 'Get push notifications again' : 'No push notifications for this chat';
  if (!current) {
    $('title').textContent = 'No chat selected';
    $('subtitle').textContent = '';
  } else {
    $('title').textContent = channel ? channelTitle(channel) : current;
    $('subtitle').textContent = channel
      ? channel.kind === 'group'
        ? `Group · ${channel.memberCount} members`
        : presenceText(client.presence.get(channel.peer))
      : '';
  }
  renderMessages();
  renderTyping();
}

function presenceText(presence) {
  if (!presence) return 'Direct chat';
  if (presence.status === 'online') return 'online';
  return presence.lastSeen ? `last seen ${timeFormat.format(new Date(presence.lastSeen))}` : 'offline';
}

function renderTyping() {
  const names = current && client ? client.typingIn(current) : [];
  const node = $('typing');
  node.textContent =
    names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

function renderMessages() {
  const box = $('messages');
  if (!current || !client) {
    box.replaceChildren(el('p', { className: 'empty muted', textContent: 'Pick a chat on the left, or start one.' }));
    return;
  }
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const timeline = client.timeline(current);
  const nodes = [];
  if (timeline.olderCursor) {
    const older = el('button', {
      type: 'button',
      className: 'secondary older',
      textContent: 'Load older messages',
      onclick: () => client.loadOlder(current).catch(toast),
    });
    older.dataset.testid = 'load-older';
    nodes.push(older);
  }
  const messages = timeline.messages();
  const channel = client.channels.get(current);
  // "Seen" under our newest message that someone else has read.
  const mine = messages.filter((m) => m.authorId === client.userId).reverse();
  const seenMessage = mine.find((m) => client.readersOf(current, m.seq).length > 0);
  for (const message of messages) {
    const node = messageNode(message);
    if (message === seenMessage) {
      const readers = client.readersOf(current, message.seq);
      const seen = el('div', {
        className: 'seen',
        textContent: channel?.kind === 'group' ? `Seen by ${readers.join(', ')}` : 'Seen',
      });
      seen.dataset.testid = 'seen';
      node.append(seen);
    }
    nodes.push(node);
  }
  for (const outgoing of client.pending(current)) nodes.push(outgoingNode(outgoing));
  if (nodes.length === 0) {
    nodes.push(el('p', { className: 'empty muted', textContent: timeline.loaded ? 'No messages yet. Say hi!' : 'Loading…' }));
  }
  box.replaceChildren(...nodes);
  if (stick || nodes.length < 30) box.scrollTop = box.scrollHeight;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function messageNode(message) {
  const mine = message.authorId === client.userId;
  const channel = client.channels.get(message.channelId);
  const manager = channel?.kind === 'group' && (channel.role === 'owner' || channel.role === 'admin');
  const when = message.createdAt ? timeFormat.format(new Date(message.createdAt)) : '';
  const node = el(
    'div',
    { className: mine ? 'message mine' : 'message' },
    mine || !message.authorId ? null : el('div', { className: 'author', textContent: message.authorId }),
    message.deleted
      ? el('div', { className: 'text deleted', textContent: 'This message was deleted' })
      : el('div', { className: 'text', textContent: message.text }),
    message.deleted ? null : attachmentsNode(message),
    el('div', { className: 'time', textContent: message.editedAt && !message.deleted ? `edited · ${when}` : when }),
  );
  if (!message.deleted && (mine || manager)) {
    const actions = el('div', { className: 'actions' });
    if (mine) {
      actions.append(action('Edit', 'edit', () => startEditing(message)));
    }
    const armed = armedDelete === message.messageId;
    const remove = action(armed ? 'Delete?' : 'Delete', 'delete', () => {
      // Two clicks: the first arms the button for a few seconds.
      if (armed) {
        armedDelete = null;
        return client.deleteMessage(message.channelId, message.messageId);
      }
      armedDelete = message.messageId;
      renderMessages();
      setTimeout(() => {
        if (armedDelete !== message.messageId) return;
        armedDelete = null;
        renderMessages();
      }, 3000);
    });
    actions.append(remove);
    node.append(actions);
  }
  node.dataset.testid = 'message';
  node.dataset.seq = String(message.seq);
  node.dataset.author = message.authorId ?? '';
  node.dataset.state = 'stored';
  if (message.deleted) node.dataset.deleted = 'true';
  if (message.editedAt) node.dataset.edited = 'true';
  return node;
}

function action(label, testid, onclick) {
  const button = el('button', { type: 'button', className: 'link', textContent: label });
  button.dataset.testid = testid;
  button.addEventListener('click', () => {
    try {
      onclick();
    } catch (err) {
      toast(err);
    }
  });
  return button;
}

function attachmentsNode(message) {
  const files = message.attachments ?? [];
  if (files.length === 0) return null;
  return el(
    'div',
    { className: 'attachments' },
    ...files.map((file) => {
      const link = el('a', { href: file.url ?? '#', target: '_blank', rel: 'noopener', className: 'attachment' });
      link.dataset.testid = 'attachment';
      if (file.contentType?.startsWith('image/') && file.url) {
        link.append(el('img', { src: file.url, alt: file.fileName, loading: 'lazy' }));
      }
      link.append(el('span', { textContent: `${file.fileName} (${formatSize(file.size)})` }));
      // Links last an hour: a click asks for a fresh one.
      link.addEventListener('click', async (event) => {
        event.preventDefault();
        try {
          const { url } = await client.api.attachmentUrl(message.channelId, file.key);
          window.open(url, '_blank', 'noopener');
        } catch (err) {
          toast(err);
        }
      });
      return link;
    }),
  );
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function outgoingNode(outgoing) {
  const states = { queued: 'waiting for the connection…', sent: 'sending…', waiting: 'will retry…', failed: 'not sent' };
  const problem = outgoing.error
    ? el(
        'div',
        { className: 'problem' },
        el('span', { textContent: `${states[outgoing.state]}: ${outgoing.error.message}` }),
        outgoing.state === 'failed'
          ? el('button', { type: 'button', className: 'link', textContent: 'Retry', onclick: () => client.retry(outgoing.clientMsgId) })
          : null,
        outgoing.state === 'failed'
          ? el('button', { type: 'button', className: 'link', textContent: 'Discard', onclick: () => client.discard(outgoing.clientMsgId) })
          : null,
      )
    : el('div', { className: 'time', textContent: states[outgoing.state] });
  const files = outgoing.attachments.map((a) => a.fileName).join(', ');
  const node = el(
    'div',
    { className: 'message mine' },
    el('div', { className: 'text', textContent: outgoing.text }),
    files ? el('div', { className: 'attachments', textContent: `Files: ${files}` }) : null,
    problem,
  );
  node.dataset.testid = 'message';
  node.dataset.author = client.userId;
  node.dataset.state = outgoing.state;
  return node;
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = event.target.text;
  if (!current) return;
  try {
    if (editing) {
      client.editMessage(editing.channelId, editing.messageId, input.value);
      stopEditing();
      return;
    }
    if (drafts.some((d) => d.state === 'uploading')) {
      return toast(new ChatError({ code: 'uploading', message: 'wait until the files are uploaded' }));
    }
    const attachments = drafts.map((d) => d.attachment);
    if (!input.value.trim() && attachments.length === 0) return;
    client.send(current, input.value, attachments);
    client.stopTyping(current);
    input.value = '';
    drafts = [];
    renderDrafts();
  } catch (err) {
    toast(err);
  }
});

function startEditing(message) {
  editing = { channelId: message.channelId, messageId: message.messageId };
  const input = $('composer').text;
  input.value = message.text;
  input.focus();
  $('editing').hidden = false;
}

function stopEditing() {
  editing = null;
  $('composer').text.value = '';
  $('editing').hidden = true;
}

$('cancel-edit').addEventListener('click', stopEditing);

$('attach').addEventListener('change', async (event) => {
  const channelId = current;
  for (const file of event.target.files) {
    const draft = { name: file.name, state: 'uploading' };
    drafts.push(draft);
    renderDrafts();
    try {
      draft.attachment = await client.upload(channelId, file);
      draft.state = 'ready';
    } catch (err) {
      drafts = drafts.filter((d) => d !== draft);
      toast(err);
    }
    renderDrafts();
  }
  event.target.value = '';
});

function renderDrafts() {
  $('drafts').replaceChildren(
    ...drafts.map((draft) => {
      const chip = el(
        'span',
        { className: `draft ${draft.state}` },
        `${draft.state === 'uploading' ? 'Uploading ' : ''}${draft.name}`,
        el('button', {
          type: 'button',
          className: 'link',
          textContent: '×',
          title: 'Remove',
          onclick: () => {
            drafts = drafts.filter((d) => d !== draft);
            renderDrafts();
          },
        }),
      );
      chip.dataset.testid = 'draft';
      chip.dataset.state = draft.state;
      return chip;
    }),
  );
  $('drafts').hidden = drafts.length === 0;
}

$('composer').text.addEventListener('input', (event) => {
  if (!current) return;
  if (event.target.value.trim()) client.typing(current);
  else client.stopTyping(current);
});

$('composer').text.addEventListener('keydown', (event) => {
  // Enter sends, Shift+Enter starts a new line.
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  } else if (event.key === 'Escape' && editing) {
    stopEditing();
  }
});

// ------------------------------------------------------------------ members

$('mute-toggle').addEventListener('click', async () => {
  const channel = client.channels.get(current);
  if (!channel) return;
  try {
    await client.mute(current, !channel.muted);
  } catch (err) {
    toast(err);
  }
});

$('members-toggle').addEventListener('click', async () => {
  const panel = $('members');
  panel.hidden = !panel.hidden;
  if (!panel.hidden) await renderMembers();
});

async function renderMembers() {
  const channelId = current;
  try {
    const view = await client.api.channel(channelId);
    if (channelId !== current) return;
    const me = view.members.find((m) => m.userId === client.userId);
    const manager = me && (me.role === 'owner' || me.role === 'admin');
    $('member-list').replaceChildren(
      ...view.members.map((member) => {
        const item = el(
          'li',
          {},
          el('span', { textContent: member.userId }),
          el('span', { className: 'role', textContent: member.role }),
        );
        const self = member.userId === client.userId;
        if (self || (manager && member.role !== 'owner')) {
          const remove = el('button', {
            type: 'button',
            textContent: self ? 'Leave' : 'Remove',
            title: self ? 'Leave this group' : `Remove ${member.userId}`,
            onclick: () => removeMember(channelId, member.userId),
          });
          remove.dataset.testid = self ? 'leave' : 'remove-member';
          item.append(remove);
        }
        item.dataset.testid = 'member';
        item.dataset.userId = member.userId;
        return item;
      }),
    );
    $('add-member-form').hidden = !manager;
  } catch (err) {
    toast(err);
  }
}

async function removeMember(channelId, userId) {
  try {
    await client.api.removeMember(channelId, userId);
    if (userId === client.userId) {
      current = null;
      $('members').hidden = true;
      await client.refreshChannels();
      renderConversation();
    } else {
      await client.refreshChannels();
      await renderMembers();
    }
  } catch (err) {
    toast(err);
  }
}

$('add-member-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    await client.api.addMembers(current, splitNames(form.user.value));
    form.reset();
    await client.refreshChannels();
    await renderMembers();
  } catch (err) {
    toast(err);
  }
});

// ------------------------------------------------------------------ status and errors

function renderStatus({ state, retryInMs }) {
  const dot = document.querySelector('[data-testid="status"]');
  dot.dataset.state = state;
  dot.title = state;
  const banner = $('connection');
  banner.dataset.state = state;
  if (state === 'open' || state === 'closed') {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  $('connection-text').textContent =
    state === 'waiting' ? `Offline. Reconnecting in ${Math.ceil(retryInMs / 1000)} s…` : 'Connecting…';
  $('reconnect').hidden = state !== 'waiting';
}

/** Shows a server error (or a local one) for a few seconds. */
function toast(error) {
  const code = error instanceof ChatError ? error.code : 'error';
  let text = error?.message ?? String(error);
  if (code === 'rate_limited' && error.retryAfterMs) text += ' (sending again automatically)';
  const node = el('div', { className: `toast ${code}` }, el('span', { className: 'code', textContent: code }), text);
  node.dataset.testid = 'toast';
  node.dataset.code = code;
  $('toasts').append(node);
  setTimeout(() => node.remove(), TOAST_MS);
}

// ------------------------------------------------------------------ start

const session = loadSession();
if (session) enter(newClient(session)).catch(toast);
else showSignIn();

// The web client's UI: renders what a ChatClient (chat-protocol.js) knows and turns clicks
// into its calls. All protocol logic lives in chat-protocol.js; user text only ever goes
// into the page as text (textContent), never as HTML.

import { config } from '../config.js';
import {
  ChatClient,
  ChatError,
  IDLE_AFTER_MS,
  REACTION_EMOJI,
  completeMention,
  mentionParts,
  mentionQuery,
  mentionsIn,
  quoteOf,
  shownStatus,
} from './chat-protocol.js';
import { Calls, callText, formatDuration } from './calls.js';

const SESSION_KEY = 'chat.session';
/** Our chosen state and custom status, per user: sent again after every connect. */
const MINE_KEY = 'chat.presence.';
const TOAST_MS = 8000;
/** How long without input makes this device idle: 5 minutes, or `?idleAfterMs=` (at
 * least a second; the browser tests use a few). */
const IDLE_MS = Math.max(1000, Number(new URLSearchParams(location.search).get('idleAfterMs')) || IDLE_AFTER_MS);
/** Messages per page of history: 50, or `?historyPage=` (1-100; the browser tests use a
 * few, to have messages that are not loaded). */
const HISTORY_PAGE = Number(new URLSearchParams(location.search).get('historyPage')) || undefined;
/** Search hits per page: 20, or `?searchLimit=` (1-50; the browser tests use a few). */
const SEARCH_LIMIT = Math.min(50, Math.max(1, Number(new URLSearchParams(location.search).get('searchLimit')) || 20));
/** How long a message opened from a search hit stays highlighted. */
const FOUND_MS = 4000;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) if (child != null) node.append(child);
  return node;
};

/** @type {ChatClient|null} */
let client = null;
/** @type {Calls|null} the calls of `client` */
let calls = null;
/** Ticks the in-call timer while a call lasts. */
let callTicker = null;
/** @type {string|null} */
let current = null;
/** The message being edited in the composer: {channelId, messageId}. */
let editing = null;
/** Files uploaded for the next message: {attachment?, name, state: 'uploading'|'ready'}. */
let drafts = [];
/** The message whose Delete was clicked once (a second click deletes it). */
let armedDelete = null;
/** The message the next one answers (shown above the composer). */
let replying = null;
/** The messageId whose reaction picker is open. */
let pickerFor = null;
/** The `@name` being typed in the composer and whom it can be: {start, options, active}. */
let mentionMenu = null;
/** The message opened from a search hit: {channelId, messageId, until (highlighted until,
 * ms), placed (scrolled into view once)}. While it is set the conversation stays where it
 * is instead of following new messages, unless scrolled to the bottom. */
let found = null;
/** The search shown: {params, hits, nextCursor, loading, error}; null when closed. */
let search = null;
/** Bumped by every search and every close: answers of older ones are dropped. */
let searchGeneration = 0;
/** Errors of actions the client makes by itself: logged, not shown. */
const BACKGROUND_ACTIONS = new Set([
  'markRead',
  'typing',
  'heartbeat',
  'getPresence',
  'subscribePresence',
  'unsubscribePresence',
  'sync',
  'invitations',
  'members',
  // The WebRTC side sends these by itself (calls.js logs their failures).
  'callSignal',
  'endCall',
]);

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

/** What `userId` chose on this device before: {chosen, customStatus}. */
function loadMine(userId) {
  try {
    return JSON.parse(localStorage.getItem(MINE_KEY + userId) ?? 'null') ?? {};
  } catch {
    return {};
  }
}

function saveMine(c) {
  if (!c.userId) return;
  localStorage.setItem(MINE_KEY + c.userId, JSON.stringify({ chosen: c.chosen, customStatus: c.customStatus }));
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
    error.textContent = err instanceof ChatError ? describe(err) : String(err);
  } finally {
    for (const button of form.querySelectorAll('button')) button.disabled = false;
  }
});

function newClient(session) {
  const c = new ChatClient({
    apiBaseUrl: config.apiBaseUrl,
    webSocketUrl: config.webSocketUrl,
    session,
    storedSession: loadSession,
    idleAfterMs: IDLE_MS,
    historyPage: HISTORY_PAGE,
  });
  c.addEventListener('session', ({ detail }) => {
    saveSession(detail.session);
    if (!detail.session && client === c) leave(c.signedOut ? '' : 'Your session has ended. Please sign in again.');
  });
  return c;
}

/** Back to the sign-in form: the client stops, nothing of the session stays on screen. */
function leave(message) {
  calls?.close();
  calls = null;
  renderCall();
  client?.stop();
  client = null;
  current = null;
  found = null;
  stopReplying();
  closeMentionMenu();
  pickerFor = null;
  closeSearch();
  $('search-form').reset();
  renderSearchScope();
  renderInvitations();
  renderBlocked();
  $('my-status').open = false;
  showSignIn(message);
}

async function enter(c) {
  client = c;
  current = null;
  calls = new Calls(c);
  calls.addEventListener('change', () => renderCall());
  calls.addEventListener('notice', ({ detail }) => notice(detail.text));
  c.addEventListener('status', ({ detail }) => {
    renderStatus(detail);
    renderCallButtons();
  });
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
    renderMemberPresence();
  });
  c.addEventListener('me', () => {
    saveMine(c);
    renderMe();
  });
  c.addEventListener('invitations', () => renderInvitations());
  c.addEventListener('blocked', () => {
    renderBlocked();
    if (current) renderConversation();
  });
  c.addEventListener('members', ({ detail }) => {
    if (detail.channelId !== current) return;
    renderConversation();
    drawMembers();
    // The members an `@` being typed can be are known now.
    if (mentionMenu) updateMentionMenu();
  });
  c.addEventListener('error', ({ detail }) => {
    if (BACKGROUND_ACTIONS.has(detail.error.action)) console.warn('chat:', detail.error);
    else toast(detail.error);
  });
  $('signin').hidden = true;
  $('chat').hidden = false;
  $('me').textContent = c.userId;
  $('my-avatar').textContent = c.userId.slice(0, 1).toUpperCase();
  c.restoreMine(loadMine(c.userId));
  renderMe();
  renderConversation();
  renderInvitations();
  renderBlocked();
  await c.start();
}

/** Signs out on the server (this device, or every device), then here. */
async function signOut(everywhere) {
  const c = client;
  if (!c) return;
  const buttons = [$('signout'), $('signout-everywhere')];
  for (const button of buttons) button.disabled = true;
  const userId = c.userId;
  try {
    // The client's `session` event (null) brings back the sign-in form.
    const problem = await c.signOut({ everywhere });
    // Nothing of the user stays in this browser.
    localStorage.removeItem(MINE_KEY + userId);
    if (problem) toast(problem);
  } catch (err) {
    toast(err);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

$('signout').addEventListener('click', () => signOut(false));
$('signout-everywhere').addEventListener('click', () => signOut(true));

// Another tab of this browser: it signed out, or it refreshed the (single-use) token.
window.addEventListener('storage', (event) => {
  if (event.key !== SESSION_KEY || !client) return;
  const session = loadSession();
  if (session) client.tokens.adopt(session);
  else leave('You were signed out in another tab.');
});

$('reconnect').addEventListener('click', () => client?.reconnectNow());
window.addEventListener('online', () => client?.reconnectNow());

// ------------------------------------------------------------------ our presence

/** Near our name: the state we chose, our custom status, and a dot for how we look
 * (idle: this device has not been used for a while). */
function renderMe() {
  const chosen = client?.chosen.state ?? 'online';
  $('my-state').value = chosen;
  $('my-avatar').dataset.presence = chosen === 'online' && client?.idle ? 'idle' : chosen;
  $('my-state').title = client?.me ? `Others see you as ${STATUS_WORDS[client.me.status] ?? client.me.status}` : 'Your presence';
  const status = shownStatus(client?.customStatus);
  const summary = $('my-status-summary');
  summary.replaceChildren(...(status ? customStatusParts(status) : ['Set a status']));
  summary.title = status ? statusTitle(status) : 'Set a custom status';
  summary.dataset.set = String(Boolean(status));
  const form = $('status-form');
  form.hideLastSeen.checked = client?.chosen.lastSeen === 'nobody';
  // The closed editor holds our status, to open with it.
  if (!$('my-status').open) {
    form.emoji.value = status?.emoji ?? '';
    form.text.value = status?.text ?? '';
    form.clear.value = 'never';
  }
}

$('my-state').addEventListener('change', (event) => {
  try {
    client?.choosePresence({ state: event.target.value });
  } catch (err) {
    toast(err);
    renderMe();
  }
});

$('my-status').addEventListener('toggle', (event) => {
  if (event.target.open) $('status-form').text.focus();
  else renderMe();
});

$('status-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    client.setCustomStatus({
      text: form.text.value,
      emoji: form.emoji.value,
      expiresAt: clearAt(form.clear.value),
    });
    $('my-status').open = false;
    renderMe();
  } catch (err) {
    toast(err);
  }
});

$('status-clear').addEventListener('click', () => {
  try {
    client.setCustomStatus({});
    $('my-status').open = false;
    renderMe();
  } catch (err) {
    toast(err);
  }
});

$('status-form').hideLastSeen.addEventListener('change', (event) => {
  try {
    client?.choosePresence({ lastSeen: event.target.checked ? 'nobody' : 'contacts' });
  } catch (err) {
    toast(err);
  }
});

/** When a custom status set now lapses: `never` (undefined), `today` (at midnight), or a
 * number of milliseconds from now. */
function clearAt(choice) {
  if (choice === 'today') {
    const midnight = new Date();
    midnight.setHours(24, 0, 0, 0);
    return midnight.getTime();
  }
  const ms = Number(choice);
  return choice !== 'never' && ms > 0 ? Date.now() + ms : undefined;
}

// Any input means this device is in use; none for a while makes it idle.
for (const type of ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart']) {
  document.addEventListener(type, () => client?.noteActivity(), { capture: true, passive: true });
}
window.addEventListener('focus', () => client?.noteActivity());

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
      const mentions = channel.channelId === current ? 0 : (channel.mentions ?? 0);
      const button = el(
        'button',
        { type: 'button', className: 'channel', onclick: () => select(channel.channelId) },
        el('span', { className: `avatar ${channel.kind}`, textContent: title.slice(0, 1).toUpperCase() }),
        el(
          'span',
          { className: 'channel-text' },
          el('span', { className: 'channel-name', textContent: title }),
          channel.peer ? customStatusNode(client.presence.get(channel.peer)) : null,
          el('span', {
            className: 'channel-meta',
            textContent:
              (channel.kind === 'group' ? `Group · ${memberCount(channel.memberCount)}` : 'Direct chat') +
              (client.invitedTo(channel.channelId).length > 0 && channel.kind === 'direct' ? ' · invited' : '') +
              (channel.muted ? ' · muted' : ''),
          }),
        ),
        mentions ? mentionBadge(mentions) : null,
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
  watchPresence();
}

/** The server tells us about the presence of the people we subscribed to: the direct
 * chats' other people (the channel list shows them) and the open group's members. */
function watchPresence() {
  if (!client) return;
  const open = current ? client.channels.get(current) : null;
  client.showPresence({ userIds: client.directPeers(), channelIds: open?.kind === 'group' ? [current] : [] });
}

function memberCount(count) {
  return count === 1 ? '1 member' : `${count} members`;
}

function badge(count) {
  const node = el('span', { className: 'badge', textContent: String(count), title: `${count} unread` });
  node.dataset.testid = 'unread';
  return node;
}

/** Unread messages that mention us: `@2`. */
function mentionBadge(count) {
  const node = el('span', {
    className: 'badge mention',
    textContent: `@${count}`,
    title: count === 1 ? '1 unread message mentions you' : `${count} unread messages mention you`,
  });
  node.dataset.testid = 'mentions';
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
    stopReplying();
    pickerFor = null;
    mentionMenu = null;
    renderMentionMenu();
    drafts = [];
    renderDrafts();
    if (found?.channelId !== channelId) found = null;
  }
  current = channelId;
  $('members').hidden = true;
  renderChannels();
  renderConversation();
  if (client.channels.get(channelId)?.kind === 'group') {
    // Its members (their presence is subscribed to by the group: see watchPresence).
    client.loadMembers(channelId).catch((err) => console.warn('chat: members', err));
  }
  try {
    await client.open(channelId);
    markRead();
  } catch (err) {
    toast(err);
  }
  $('composer').text.focus();
}

/** Tells whom an action invited: they join when they accept. */
function noteInvited(view) {
  if (view.invited?.length) notice(`Invited ${view.invited.join(', ')}: they join when they accept.`);
}


$('direct-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    const view = await client.openDirect(form.user.value.trim().toLowerCase());
    form.reset();
    noteInvited(view);
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
    noteInvited(view);
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
  renderBlockToggle(channel);
  renderCallButtons();
  const invited = channel ? client.invitedTo(channel.channelId) : [];
  $('invited').hidden = invited.length === 0;
  $('invited').textContent = invited.length ? `invited: ${invited.join(', ')}` : '';
  $('invited').title = 'Invited people join when they accept';
  $('mute-toggle').hidden = !channel;
  $('mute-toggle').textContent = channel?.muted ? 'Unmute' : 'Mute';
  $('mute-toggle').title = channel?.muted ? 'Get push notifications again' : 'No push notifications for this chat';
  const peer = channel?.kind === 'direct' ? client.presence.get(channel.peer) : undefined;
  if (!current) {
    $('title').textContent = 'No chat selected';
    $('subtitle').textContent = '';
  } else {
    $('title').textContent = channel ? channelTitle(channel) : current;
    $('subtitle').textContent = channel
      ? channel.kind === 'group'
        ? groupText(channel)
        : presenceText(peer)
      : '';
  }
  if (peer) $('subtitle').dataset.presence = peer.status;
  else delete $('subtitle').dataset.presence;
  $('subtitle').title = peer?.status === 'offline' && peer.lastSeen ? new Date(peer.lastSeen).toLocaleString() : '';
  const status = peer ? shownStatus(peer.customStatus) : null;
  $('peer-status').hidden = !status;
  $('peer-status').replaceChildren(...(status ? customStatusParts(status) : []));
  renderSearchScope();
  renderMessages();
  renderTyping();
}

/** "Group · 3 members · 1 online" (online: others, once the members are known). */
function groupText(channel) {
  const known = client.members.get(channel.channelId);
  const count = known?.length ?? channel.memberCount;
  const others = known?.filter((m) => m.userId !== client.userId) ?? [];
  const online = others.filter((m) => isOnline(client.presence.get(m.userId)?.status));
  return `Group · ${memberCount(count)}` + (others.length ? ` · ${online.length} online` : '');
}

/** The Block / Unblock button of a direct chat, for its other person. */
function renderBlockToggle(channel) {
  const button = $('block-toggle');
  const peer = channel?.kind === 'direct' ? channel.peer : null;
  button.hidden = !peer;
  if (!peer) return;
  const blocked = client.blocked.includes(peer);
  button.textContent = blocked ? 'Unblock' : 'Block';
  button.dataset.testid = blocked ? 'unblock-user' : 'block-user';
  button.dataset.userId = peer;
  button.title = blocked
    ? `Unblock ${peer}`
    : `Block ${peer}: they can no longer invite you, open a chat with you or see when you are online`;
}

$('block-toggle').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  const userId = button.dataset.userId;
  if (!userId || !client) return;
  button.disabled = true;
  try {
    if (client.blocked.includes(userId)) await client.unblock(userId);
    else await client.block(userId);
  } catch (err) {
    toast(err);
  } finally {
    button.disabled = false;
  }
});

const STATUS_WORDS = { online: 'online', idle: 'idle', dnd: 'do not disturb', offline: 'offline' };

/** Idle and do-not-disturb people are online too. */
function isOnline(status) {
  return status === 'online' || status === 'idle' || status === 'dnd';
}

function presenceText(presence) {
  if (!presence) return 'Direct chat';
  if (presence.status !== 'offline' && STATUS_WORDS[presence.status]) return STATUS_WORDS[presence.status];
  return presence.lastSeen ? `last seen ${timeFormat.format(new Date(presence.lastSeen))}` : 'offline';
}

/** A custom status as text: its emoji, then its text. */
function customStatusParts(status) {
  const parts = [];
  if (status.emoji) parts.push(el('span', { className: 'status-emoji', textContent: status.emoji }));
  if (status.text) parts.push(el('span', { className: 'status-text', textContent: status.text }));
  return parts;
}

/** Someone's custom status where their presence is shown (null when they have none). */
function customStatusNode(presence) {
  const status = shownStatus(presence?.customStatus);
  if (!status) return null;
  const node = el('span', { className: 'custom-status', title: statusTitle(status) }, ...customStatusParts(status));
  node.dataset.testid = 'custom-status';
  return node;
}

function statusTitle(status) {
  const words = [status.emoji, status.text].filter(Boolean).join(' ');
  return status.expiresAt ? `${words} (until ${new Date(status.expiresAt).toLocaleString()})` : words;
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
    const node = message.call && !message.deleted ? callEntryNode(message) : messageNode(message);
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
  // A message opened from a search hit is scrolled into view once it is there; after that
  // the conversation stays put (unless scrolled to the bottom) until another chat opens.
  const anchor = found?.channelId === current ? found : null;
  const target = anchor ? messageElement(anchor.messageId) : null;
  if (target && !anchor.placed) {
    target.scrollIntoView({ block: 'center' });
    anchor.placed = true;
  } else if (stick || (nodes.length < 30 && !anchor)) {
    box.scrollTop = box.scrollHeight;
  }
}

/** The open conversation's element of a stored message. */
function messageElement(messageId) {
  const entries = $('messages').querySelectorAll('[data-testid="message"][data-message-id], [data-testid="call-entry"]');
  return [...entries].find((m) => m.dataset.messageId === messageId) ?? null;
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
    message.replyTo && !message.deleted ? quoteNode(message.replyTo) : null,
    message.deleted
      ? el('div', { className: 'text deleted', textContent: 'This message was deleted' })
      : textNode(message.text, message.mentions),
    message.deleted ? null : attachmentsNode(message),
    message.deleted ? null : reactionsNode(message),
    el('div', { className: 'time', textContent: message.editedAt && !message.deleted ? `edited · ${when}` : when }),
  );
  if (!message.deleted) {
    const actions = el('div', { className: 'actions' });
    actions.append(action('Reply', 'reply', () => startReplying(message)));
    actions.append(
      action(pickerFor === message.messageId ? 'Close' : 'React', 'react', () => {
        pickerFor = pickerFor === message.messageId ? null : message.messageId;
        renderMessages();
      }),
    );
    if (mine) {
      actions.append(action('Edit', 'edit', () => startEditing(message)));
    }
    if (mine || manager) {
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
    }
    node.append(actions);
    if (pickerFor === message.messageId) node.append(pickerNode(message));
  }
  node.dataset.testid = 'message';
  node.dataset.messageId = message.messageId;
  node.dataset.seq = String(message.seq);
  node.dataset.author = message.authorId ?? '';
  node.dataset.state = 'stored';
  if (found?.messageId === message.messageId && found.channelId === message.channelId && Date.now() < found.until) {
    node.classList.add('found');
    node.dataset.found = 'true';
  }
  if (message.deleted) node.dataset.deleted = 'true';
  if (message.editedAt) node.dataset.edited = 'true';
  if (!mine && message.mentions?.includes(client.userId)) node.dataset.mentionsMe = 'true';
  return node;
}

/** The entry a call left in the conversation: how it went, and who called whom. */
function callEntryNode(message) {
  const call = message.call;
  const outgoing = message.authorId === client.userId;
  const when = message.createdAt ? timeFormat.format(new Date(message.createdAt)) : '';
  const node = el(
    'div',
    { className: `message call-entry ${call.outcome ?? ''}${outgoing ? ' mine' : ''}` },
    el(
      'div',
      { className: 'call-line' },
      el('span', { className: 'call-icon' }, callIcon(call.media)),
      el('span', { className: 'call-text', textContent: callText(call) }),
    ),
    el('div', { className: 'time', textContent: `${outgoing ? 'Outgoing' : 'Incoming'} · ${when}` }),
  );
  node.dataset.testid = 'call-entry';
  node.dataset.outcome = call.outcome ?? '';
  node.dataset.media = call.media ?? '';
  node.dataset.callId = call.callId ?? '';
  node.dataset.messageId = message.messageId;
  node.dataset.seq = String(message.seq);
  node.dataset.author = message.authorId ?? '';
  node.dataset.state = 'stored';
  return node;
}

/** The phone or camera of the header's call buttons (no emoji font needed). */
function callIcon(media) {
  return $(media === 'video' ? 'call-video' : 'call-audio').querySelector('svg').cloneNode(true);
}

/** A message's text, with the members it mentions highlighted (as text, never HTML). */
function textNode(text, mentions = []) {
  const node = el('div', { className: 'text' });
  for (const part of mentionParts(text, mentions)) {
    if (!part.userId) {
      node.append(part.text);
      continue;
    }
    const mention = el('span', {
      className: part.userId === client.userId ? 'mention of-me' : 'mention',
      textContent: part.text,
    });
    mention.dataset.testid = 'mention';
    mention.dataset.userId = part.userId;
    node.append(mention);
  }
  return node;
}

/** What a reply shows of the message it answers; a click shows that message when loaded. */
function quoteNode(quote) {
  const node = el(
    'div',
    { className: quote.deleted ? 'quote deleted' : 'quote', title: 'Show the message' },
    el('span', { className: 'quote-author', textContent: quote.authorId }),
    el('span', { className: 'quote-text', textContent: quote.deleted ? 'Deleted message' : quote.text || 'A file' }),
  );
  node.dataset.testid = 'quote';
  node.dataset.messageId = quote.messageId;
  if (quote.deleted) node.dataset.deleted = 'true';
  node.addEventListener('click', () => {
    const target = [...$('messages').querySelectorAll('[data-testid="message"]')].find(
      (m) => m.dataset.messageId === quote.messageId,
    );
    if (!target) return;
    target.scrollIntoView({ block: 'center', behavior: 'smooth' });
    target.classList.add('flash');
    setTimeout(() => target.classList.remove('flash'), 1500);
  });
  return node;
}

/** The counts under a message; ours are highlighted, and a click takes ours back or adds
 * ours with that emoji. */
function reactionsNode(message) {
  const reactions = message.reactions ?? [];
  if (reactions.length === 0) return null;
  return el(
    'div',
    { className: 'reactions' },
    ...reactions.map((reaction) => {
      const chip = el(
        'button',
        {
          type: 'button',
          className: reaction.me ? 'reaction mine' : 'reaction',
          title: reaction.me
            ? `You reacted with ${reaction.emoji} (click to take it back)`
            : `React with ${reaction.emoji}`,
        },
        el('span', { className: 'emoji', textContent: reaction.emoji }),
        el('span', { className: 'count', textContent: String(reaction.count) }),
      );
      chip.setAttribute('aria-pressed', String(Boolean(reaction.me)));
      chip.dataset.testid = 'reaction';
      chip.dataset.emoji = reaction.emoji;
      chip.dataset.count = String(reaction.count);
      if (reaction.me) chip.dataset.mine = 'true';
      chip.addEventListener('click', () => {
        try {
          client.toggleReaction(message, reaction.emoji);
        } catch (err) {
          toast(err);
        }
      });
      return chip;
    }),
  );
}

/** The emoji to react to a message with; one we reacted with already is taken back. */
function pickerNode(message) {
  const picker = el(
    'div',
    { className: 'reaction-picker', role: 'toolbar', ariaLabel: 'React' },
    ...REACTION_EMOJI.map((emoji) => {
      const mine = (message.reactions ?? []).some((r) => r.emoji === emoji && r.me);
      const option = el('button', {
        type: 'button',
        className: mine ? 'mine' : '',
        textContent: emoji,
        title: mine ? `Take back ${emoji}` : `React with ${emoji}`,
      });
      option.dataset.testid = 'reaction-option';
      option.dataset.emoji = emoji;
      option.addEventListener('click', () => {
        pickerFor = null;
        try {
          client.toggleReaction(message, emoji);
        } catch (err) {
          toast(err);
        }
        renderMessages();
      });
      return option;
    }),
  );
  picker.dataset.testid = 'reaction-picker';
  return picker;
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
    outgoing.replyTo ? quoteNode(outgoing.replyTo) : null,
    textNode(outgoing.text, outgoing.mentions),
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
    // Members whose `@userId` is in the text (the completion inserts them so).
    const mentions = input.value.includes('@') ? mentionsIn(input.value, client.mentionable(current)) : [];
    const replyTo = replying?.channelId === current ? replying : undefined;
    client.send(current, input.value, attachments, { replyTo, mentions });
    client.stopTyping(current);
    // Back from a message opened from a search hit: what we send shows at the bottom, and
    // the conversation follows new messages again.
    if (found?.channelId === current) {
      found = null;
      $('messages').scrollTop = $('messages').scrollHeight;
    }
    input.value = '';
    drafts = [];
    renderDrafts();
    stopReplying();
    closeMentionMenu();
  } catch (err) {
    toast(err);
  }
});

function startEditing(message) {
  stopReplying();
  closeMentionMenu();
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

/** The next message answers `message`: the composer shows what it answers. */
function startReplying(message) {
  if (editing) stopEditing();
  replying = message;
  $('replying-quote').replaceChildren(quoteNode(quoteOf(message)));
  $('replying').hidden = false;
  $('composer').text.focus();
}

function stopReplying() {
  replying = null;
  $('replying').hidden = true;
  $('replying-quote').replaceChildren();
}

$('cancel-reply').addEventListener('click', () => {
  stopReplying();
  $('composer').text.focus();
});

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
  updateMentionMenu();
});

$('composer').text.addEventListener('keydown', (event) => {
  if (mentionMenu?.options.length && !event.isComposing && mentionKey(event)) {
    event.preventDefault();
    return;
  }
  // Enter sends, Shift+Enter starts a new line.
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  } else if (event.key === 'Escape' && editing) {
    stopEditing();
  } else if (event.key === 'Escape' && replying) {
    stopReplying();
  }
});

// The caret moved: maybe into or out of an `@name`.
$('composer').text.addEventListener('click', () => updateMentionMenu());
$('composer').text.addEventListener('keyup', (event) => {
  if (['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) updateMentionMenu();
});
$('composer').text.addEventListener('blur', () => closeMentionMenu());

// ------------------------------------------------------------------ mentions

/** Offers the channel's members matching the `@name` at the caret. Not while editing:
 * an edit changes the text only, not whom the message mentions. */
function updateMentionMenu() {
  const input = $('composer').text;
  const typed =
    current && client && !editing && input.selectionStart === input.selectionEnd
      ? mentionQuery(input.value, input.selectionStart)
      : null;
  if (!typed) return closeMentionMenu();
  const query = typed.query.toLowerCase();
  const options = client
    .mentionable(current)
    .filter((userId) => userId.toLowerCase().startsWith(query))
    .sort()
    .slice(0, 8);
  const chosen = mentionMenu?.options[mentionMenu.active];
  mentionMenu = { start: typed.start, options, active: Math.max(0, options.indexOf(chosen)) };
  renderMentionMenu();
}

function closeMentionMenu() {
  mentionMenu = null;
  renderMentionMenu();
}

function renderMentionMenu() {
  const menu = $('mention-menu');
  const options = mentionMenu?.options ?? [];
  menu.hidden = options.length === 0;
  menu.replaceChildren(
    ...options.map((userId, i) => {
      const active = i === mentionMenu.active;
      const item = el('li', { role: 'option', className: active ? 'active' : '', textContent: `@${userId}` });
      item.setAttribute('aria-selected', String(active));
      item.dataset.testid = 'mention-option';
      item.dataset.userId = userId;
      // mousedown, not click: the composer keeps the focus (its blur closes the menu).
      item.addEventListener('mousedown', (event) => {
        event.preventDefault();
        pickMention(userId);
      });
      return item;
    }),
  );
}

/** Arrows move in the open menu, Enter or Tab picks, Escape closes; answers whether the
 * key was the menu's. */
function mentionKey(event) {
  const count = mentionMenu.options.length;
  if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    mentionMenu.active = (mentionMenu.active + (event.key === 'ArrowDown' ? 1 : count - 1)) % count;
    renderMentionMenu();
  } else if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab') {
    pickMention(mentionMenu.options[mentionMenu.active]);
  } else if (event.key === 'Escape') {
    closeMentionMenu();
  } else {
    return false;
  }
  return true;
}

/** Puts `@userId` in place of the `@name` being typed. */
function pickMention(userId) {
  const input = $('composer').text;
  if (!mentionMenu) return;
  const done = completeMention(input.value, mentionMenu.start, input.selectionStart, userId);
  input.value = done.text;
  input.focus();
  input.setSelectionRange(done.caret, done.caret);
  closeMentionMenu();
}

// ------------------------------------------------------------------ search

/** "Only in Team": the scope option, offered while a chat is open. */
function renderSearchScope() {
  const channel = current ? client?.channels.get(current) : null;
  $('search-scope').hidden = !current;
  if (!current) $('search-form').here.checked = false;
  $('search-scope-text').textContent = current ? `Only in ${channel ? channelTitle(channel) : 'this chat'}` : '';
}

$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  // Sent as typed (a trailing space means the last word is a whole word, not a prefix).
  const q = form.q.value.replace(/^\s+/, '');
  if (!client) return;
  if (!q.trim()) return closeSearch();
  const channelId = form.here.checked && current ? current : undefined;
  runSearch({ q, channelId, limit: SEARCH_LIMIT });
});

// Another scope for the query shown: searched again.
$('search-form').here.addEventListener('change', () => {
  if (search && $('search-form').q.value.trim()) $('search-form').requestSubmit();
});

$('search-form').q.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') {
    event.target.value = '';
    closeSearch();
  }
});

$('search-close').addEventListener('click', () => closeSearch());

$('search-more').addEventListener('click', () => {
  if (search?.nextCursor) runSearch({ ...search.params, cursor: search.nextCursor }, true);
});

/** Asks the server for hits: a new search, or (`more`) the next page of the one shown. */
async function runSearch(params, more = false) {
  const generation = ++searchGeneration;
  const c = client;
  if (!more) search = { params, hits: [], nextCursor: null };
  search.loading = true;
  search.error = null;
  renderSearch();
  try {
    const page = await c.search(params);
    if (generation !== searchGeneration || c !== client) return;
    search.hits.push(...(page?.hits ?? []));
    search.nextCursor = page?.nextCursor ?? null;
  } catch (err) {
    if (generation !== searchGeneration || c !== client) return;
    search.error = err;
  }
  search.loading = false;
  renderSearch();
  const panel = $('search-results');
  panel.dataset.answers = String(Number(panel.dataset.answers) + 1);
}

function closeSearch() {
  searchGeneration++;
  search = null;
  renderSearch();
}

/** The results panel: the hits so far, "More results" while there are more, the empty
 * state, or why the search failed. `data-state`: loading, done or error; `data-answers`
 * counts the answers shown (the browser tests wait for the next one). */
function renderSearch() {
  const panel = $('search-results');
  panel.hidden = !search;
  if (!search) {
    panel.dataset.state = 'idle';
    $('search-hits').replaceChildren();
    return;
  }
  const { params, hits, nextCursor, loading, error } = search;
  panel.dataset.state = loading ? 'loading' : error ? 'error' : 'done';
  const channel = params.channelId ? client?.channels.get(params.channelId) : null;
  const where = params.channelId ? ` in ${channel ? channelTitle(channel) : 'this chat'}` : '';
  $('search-summary').textContent = loading && hits.length === 0
    ? `Searching for “${params.q}”${where}…`
    : `${hits.length}${nextCursor ? '+' : ''} ${hits.length === 1 && !nextCursor ? 'result' : 'results'} for “${params.q}”${where}`;
  $('search-error').hidden = !error;
  $('search-error').textContent = error ? describe(error) : '';
  if (error) $('search-error').dataset.code = error instanceof ChatError ? error.code : 'error';
  else delete $('search-error').dataset.code;
  $('search-empty').hidden = loading || Boolean(error) || hits.length > 0;
  $('search-hits').replaceChildren(...hits.map(hitNode));
  $('search-more').hidden = !nextCursor || Boolean(error && hits.length === 0);
  $('search-more').disabled = loading;
  $('search-more').textContent = loading && hits.length > 0 ? 'Loading…' : 'More results';
}

const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

/** When a hit was written: the time today, the date and time before. */
function hitTime(createdAt) {
  if (!createdAt) return '';
  const date = new Date(createdAt);
  const today = new Date().toDateString() === date.toDateString();
  return today ? timeFormat.format(date) : `${dayFormat.format(date)} ${timeFormat.format(date)}`;
}

/** @param {import('./chat-protocol.js').SearchHit} hit */
function hitNode(hit) {
  const message = hit.message;
  const channel = client?.channels.get(message.channelId);
  const snippet = el('span', { className: 'hit-snippet' });
  const fragments = Array.isArray(hit.snippet) && hit.snippet.length > 0 ? hit.snippet : [{ text: message.text ?? '' }];
  // Text only: the fragments become text nodes, the highlighted ones inside <mark>.
  for (const fragment of fragments) {
    const text = String(fragment?.text ?? '');
    snippet.append(fragment?.highlighted === true ? el('mark', { textContent: text }) : text);
  }
  snippet.dataset.testid = 'search-hit-snippet';
  const channelName = el('span', { className: 'hit-channel', textContent: channel ? channelTitle(channel) : message.channelId });
  channelName.dataset.testid = 'search-hit-channel';
  const author = el('span', {
    className: 'hit-author',
    textContent: message.authorId === client?.userId ? 'You' : (message.authorId ?? ''),
  });
  author.dataset.testid = 'search-hit-author';
  const time = el('time', { className: 'hit-time', textContent: hitTime(message.createdAt) });
  if (message.createdAt) {
    time.dateTime = new Date(message.createdAt).toISOString();
    time.title = new Date(message.createdAt).toLocaleString();
  }
  const button = el(
    'button',
    { type: 'button', className: 'search-hit', title: 'Show this message in its chat', onclick: () => openHit(message) },
    el('span', { className: 'hit-meta' }, channelName, el('span', { className: 'hit-dot', textContent: '·' }), author, time),
    snippet,
  );
  button.dataset.testid = 'search-hit';
  button.dataset.channelId = message.channelId;
  button.dataset.messageId = message.messageId;
  button.dataset.author = message.authorId ?? '';
  return el('li', {}, button);
}

/** Opens the chat of a hit at its message: the history around it is loaded, it is
 * scrolled into view and highlighted for a moment. */
async function openHit(message) {
  const { channelId, messageId } = message;
  if (!client) return;
  const mark = { channelId, messageId, until: 0, placed: false };
  found = mark;
  await select(channelId);
  if (found !== mark || current !== channelId || !client) return;
  let there;
  try {
    there = await client.loadAround(channelId, messageId);
  } catch (err) {
    if (found === mark) found = null;
    toast(err);
    return;
  }
  if (found !== mark || current !== channelId) return;
  if (!there) {
    found = null;
    renderMessages();
    notice('That message is no longer there.');
    return;
  }
  mark.until = Date.now() + FOUND_MS;
  mark.placed = false;
  renderMessages();
  setTimeout(() => {
    if (found !== mark) return;
    mark.until = 0;
    // Not drawn again (that could move the conversation): the highlight just goes.
    const node = messageElement(messageId);
    node?.classList.remove('found');
    if (node) delete node.dataset.found;
  }, FOUND_MS);
}

// ------------------------------------------------------------------ calls

/** The voice and video call buttons of a direct chat (none in groups); disabled while the
 * other person has not joined, is blocked, while we are in a call or offline. */
function renderCallButtons() {
  const channel = current ? client?.channels.get(current) : null;
  const peer = channel?.kind === 'direct' ? channel.peer : null;
  const why = !peer
    ? ''
    : channel.memberCount < 2
      ? `${peer} has not joined this chat yet`
      : client.blocked.includes(peer)
        ? `You block ${peer}`
        : calls?.busy
          ? 'You are in a call'
          : client.state !== 'open'
            ? 'Not connected'
            : '';
  for (const [id, what] of [
    ['call-audio', 'Voice call'],
    ['call-video', 'Video call'],
  ]) {
    const button = $(id);
    button.hidden = !peer;
    button.disabled = Boolean(why);
    button.title = why || `${what} with ${peer}`;
  }
}

for (const [id, media] of [
  ['call-audio', 'audio'],
  ['call-video', 'video'],
]) {
  $(id).addEventListener('click', async () => {
    if (!current || !calls) return;
    try {
      await calls.start(current, media);
    } catch (err) {
      toast(err);
    }
  });
}

$('call-accept').addEventListener('click', async () => {
  const ringing = calls?.ringing;
  if (!ringing) return;
  try {
    await calls.accept(ringing.call.callId);
  } catch (err) {
    toast(err);
  }
});

$('call-decline').addEventListener('click', () => {
  const ringing = calls?.ringing;
  if (!ringing) return;
  try {
    calls.decline(ringing.call.callId);
  } catch (err) {
    toast(err);
  }
});

$('call-cancel').addEventListener('click', () => calls?.hangUp());
$('call-hangup').addEventListener('click', () => calls?.hangUp());
$('call-mute').addEventListener('click', () => calls?.active && calls.setMuted(!calls.active.muted));
$('call-camera').addEventListener('click', () => calls?.active && calls.setCameraOff(!calls.active.cameraOff));

/** For the browser tests: the call's peer connection, to read its statistics. */
window.__chatCall = { pc: () => calls?.pc ?? null };

function mediaWords(media) {
  return media === 'video' ? 'video call' : 'voice call';
}

/** The call screens: a call ringing here, ours ringing out, or the call we are in. */
function renderCall() {
  const ringing = calls?.ringing ?? null;
  const outgoing = calls?.outgoing ?? null;
  const active = calls?.active ?? null;

  $('incoming-call').hidden = !ringing || Boolean(active);
  if (ringing) {
    const caller = ringing.call.callerId;
    $('incoming-caller').textContent = caller;
    $('incoming-avatar').textContent = caller.slice(0, 1).toUpperCase();
    $('incoming-media').textContent = `Incoming ${mediaWords(ringing.call.media)}`;
    $('incoming-call').dataset.media = ringing.call.media;
    $('call-accept').disabled = ringing.accepting;
    $('call-decline').disabled = ringing.accepting;
  }

  $('outgoing-call').hidden = !outgoing;
  if (outgoing) {
    const callee = client.channels.get(outgoing.channelId)?.peer ?? '';
    $('outgoing-callee').textContent = callee;
    $('outgoing-avatar').textContent = callee.slice(0, 1).toUpperCase();
    $('outgoing-media').textContent = `Calling… (${mediaWords(outgoing.media)})`;
    $('outgoing-call').dataset.media = outgoing.media;
  }
  showStream($('outgoing-preview'), outgoing?.media === 'video' ? outgoing.local : null);

  $('in-call').hidden = !active;
  if (active) {
    const peer = calls.peerOf(active.call);
    const video = active.call.media === 'video';
    $('in-call').dataset.callState = active.connection;
    $('in-call').dataset.media = active.call.media;
    $('in-call-peer').textContent = peer;
    $('in-call-avatar').textContent = peer.slice(0, 1).toUpperCase();
    // A voice call plays through the same element, unseen: the avatar shows instead.
    $('in-call-avatar').hidden = video;
    $('call-stage').classList.toggle('video', video);
    setPressed($('call-mute'), active.muted, 'Unmute', 'Mute');
    $('call-camera').hidden = !video;
    setPressed($('call-camera'), active.cameraOff, 'Camera on', 'Camera off');
  }
  showStream($('remote-media'), active?.remote ?? null);
  $('remote-media').hidden = !active || active.call.media !== 'video';
  showStream($('local-preview'), active?.call.media === 'video' ? active.local : null);

  $('calls').hidden = $('incoming-call').hidden && !outgoing && !active;
  clearInterval(callTicker);
  callTicker = active ? setInterval(renderCallTimer, 1000) : null;
  renderCallTimer();
  renderCallButtons();
}

/** "Connecting…", then the time since the call was answered. */
function renderCallTimer() {
  const active = calls?.active;
  if (!active) return;
  const words = { connecting: 'Connecting…', connected: 'Connected', failed: 'Could not connect' };
  $('call-status').textContent = words[active.connection];
  $('call-timer').textContent = formatDuration(Date.now() - active.since);
  $('call-timer').hidden = active.connection !== 'connected';
}

function setPressed(button, pressed, on, off) {
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = pressed ? on : off;
}

/** Plays `stream` in `video` (the same stream is not set again: that would restart it). */
function showStream(video, stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.hidden = !stream;
}

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
  if (panel.hidden) return;
  $('member-list').replaceChildren();
  drawMembers();
  await renderMembers();
});

/** Reads the open group's members; the client's `members` event draws them. */
async function renderMembers() {
  try {
    await client.loadMembers(current);
  } catch (err) {
    toast(err);
  }
}

/** The member list of the open group as last read, and whom we invited to it. */
function drawMembers() {
  const channelId = current;
  const members = client?.members.get(channelId);
  if (!members || $('members').hidden) return;
  const me = members.find((m) => m.userId === client.userId);
  const manager = me && (me.role === 'owner' || me.role === 'admin');
  const invited = client.invitedTo(channelId).map((userId) => {
    const item = el(
      'li',
      { className: 'invited', title: 'Invited: joins when they accept' },
      el('span', { textContent: userId }),
      el('span', { className: 'role', textContent: 'invited' }),
    );
    item.dataset.testid = 'member-invited';
    item.dataset.userId = userId;
    return item;
  });
  $('member-list').replaceChildren(
    ...members.map((member) => {
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
    ...invited,
  );
  renderMemberPresence();
  $('add-member-form').hidden = !manager;
}

/** The presence dots and custom statuses of the open member list, as presence changes. */
function renderMemberPresence() {
  for (const item of $('member-list').querySelectorAll('[data-testid="member"]')) {
    const userId = item.dataset.userId;
    const presence = userId !== client?.userId ? client?.presence.get(userId) : undefined;
    if (presence) item.dataset.presence = presence.status;
    else delete item.dataset.presence;
    item.querySelector('[data-testid="custom-status"]')?.remove();
    const status = customStatusNode(presence);
    if (status) item.firstElementChild.after(status);
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
    const view = await client.addMembers(current, splitNames(form.user.value));
    form.reset();
    noteInvited(view);
    await renderMembers();
  } catch (err) {
    toast(err);
  }
});

// ------------------------------------------------------------------ invitations and blocking

/** The pending invitations, each with Accept, Decline and Block. `data-polled-at` says when
 * the list shown was asked for (ms). */
function renderInvitations() {
  const section = $('invitations');
  const invitations = client?.invitations ?? [];
  section.hidden = invitations.length === 0;
  section.dataset.polledAt = String(client?.invitationsAskedAt ?? 0);
  $('invitation-list').replaceChildren(...invitations.map(invitationNode));
}

/** @param {import('./chat-protocol.js').Invitation} invitation */
function invitationNode(invitation) {
  const from = invitation.invitedBy;
  const text =
    invitation.kind === 'group'
      ? `${from} invites you to “${invitation.name ?? 'a group'}”${invitation.role === 'admin' ? ' as an admin' : ''}`
      : `Direct chat from ${from}`;
  const buttons = [
    invitationButton('Accept', 'invitation-accept', '', () => acceptInvitation(invitation.channelId)),
    invitationButton('Decline', 'invitation-decline', 'secondary', () => client.declineInvitation(invitation.channelId)),
    invitationButton('Block', 'invitation-block', 'link', () => client.block(from), `Block ${from}: no more invitations from them`),
  ];
  const item = el(
    'li',
    { className: 'invitation', title: `since ${new Date(invitation.invitedAt).toLocaleString()}` },
    el('span', { className: 'invitation-text', textContent: text }),
    el('div', { className: 'row' }, ...buttons),
  );
  item.dataset.testid = 'invitation';
  item.dataset.channelId = invitation.channelId;
  item.dataset.kind = invitation.kind;
  item.dataset.invitedBy = from;
  return item;
}

/** A button that is disabled while its action runs; a failure is shown. */
function invitationButton(label, testid, className, run, title = '') {
  const button = el('button', { type: 'button', className, textContent: label, title });
  button.dataset.testid = testid;
  button.addEventListener('click', async () => {
    const row = button.parentElement;
    for (const b of row.querySelectorAll('button')) b.disabled = true;
    try {
      await run();
    } catch (err) {
      toast(err);
    } finally {
      for (const b of row.querySelectorAll('button')) b.disabled = false;
    }
  });
  return button;
}

async function acceptInvitation(channelId) {
  const view = await client.acceptInvitation(channelId);
  await select(view.channelId);
}

function renderBlocked() {
  const blocked = client?.blocked ?? [];
  $('blocked-count').textContent = blocked.length ? `(${blocked.length})` : '';
  const items = blocked.map((userId) => {
    const unblock = el('button', { type: 'button', className: 'link', textContent: 'Unblock', title: `Unblock ${userId}` });
    unblock.dataset.testid = 'unblock-user';
    unblock.addEventListener('click', async () => {
      unblock.disabled = true;
      try {
        await client.unblock(userId);
      } catch (err) {
        unblock.disabled = false;
        toast(err);
      }
    });
    const item = el('li', {}, el('span', { textContent: userId }), unblock);
    item.dataset.testid = 'blocked-user';
    item.dataset.userId = userId;
    return item;
  });
  if (items.length === 0) items.push(el('li', { className: 'none', textContent: 'Nobody' }));
  $('blocked-list').replaceChildren(...items);
}

$('block-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    await client.block(form.user.value.trim().toLowerCase());
    form.reset();
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

/** An error in words: the server's message, or for `rate_limited` how long to wait. */
function describe(error) {
  if (error?.code !== 'rate_limited') return error?.message ?? String(error);
  const seconds = Math.max(1, Math.ceil((error.retryAfterMs ?? 0) / 1000));
  const wait = !error.retryAfterMs ? 'in a moment' : seconds < 120 ? `in ${seconds} s` : `in ${Math.ceil(seconds / 60)} min`;
  return `Too fast - try again ${wait}` + (error.clientMsgId ? ' (your message is sent again by itself)' : '');
}

/** Shows a server error (or a local one) for a few seconds. */
function toast(error) {
  const code = error instanceof ChatError ? error.code : 'error';
  showToast(code, describe(error), error?.message);
}

/** Shows a piece of news (not an error) for a few seconds. */
function notice(text) {
  showToast('info', text);
}

function showToast(code, text, title = '') {
  const label = code === 'info' ? null : el('span', { className: 'code', textContent: code });
  const node = el('div', { className: `toast ${code}`, title }, label, text);
  node.dataset.testid = 'toast';
  node.dataset.code = code;
  $('toasts').append(node);
  setTimeout(() => node.remove(), TOAST_MS);
}

// ------------------------------------------------------------------ start

const session = loadSession();
if (session) enter(newClient(session)).catch(toast);
else showSignIn();

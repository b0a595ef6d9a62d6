// The chat backend's client protocol in one module, and the reference for client authors:
// the HTTP API (accounts, channels, history), one WebSocket that reconnects with backoff
// and sends heartbeats, catch-up with `sync` from the last message seen, ordering by `seq`,
// an outbox whose sends are retried with the same `clientMsgId` (so a retry never stores a
// second message), edits and deletions, replies, mentions and reactions, file uploads
// (presigned POST straight to S3), unread counts and read receipts (`markRead`), typing,
// presence (subscriptions to the users on screen, idle devices, a chosen state such as do
// not disturb or invisible, custom statuses), muting, invitations (nobody is added to a
// channel without accepting), blocking, signing out, and the signalling of voice and video
// calls in direct chats (the WebRTC side is calls.js).
// docs/PROTOCOL.md describes the wire; this file shows how a client uses it. No DOM here:
// the UI (app.js) listens to the events of a ChatClient.

/**
 * @typedef {object} Message
 * @property {string} channelId
 * @property {string} messageId   decimal string: 64-bit ids lose precision as JS numbers
 * @property {number} seq         1, 2, 3… per channel, without gaps
 * @property {string} authorId
 * @property {string} text
 * @property {string} clientMsgId
 * @property {number} createdAt   milliseconds since the epoch
 * @property {Attachment[]} [attachments]
 * @property {number} [editedAt]   present once edited
 * @property {boolean} [deleted]   true once deleted: the text and files are gone
 * @property {number} [changeSeq]  present once edited, deleted or reacted to: the latest
 *                                 change's position
 * @property {Quote} [replyTo]     present when it answers another message of the channel
 * @property {string[]} [mentions] members it mentions (`@userId` in the text)
 * @property {ReactionCount[]} [reactions]  from history and sync only; kept up to date here
 *                                 from `reaction` frames
 * @property {number} [reactionsAt] added here: the change position its `reactions` are as of
 *                                 (and `mineAt`, `meAt`: of their `me`; see Timeline.react)
 * @property {CallEntry} [call]    present on the entry a call leaves when it ends (authored
 *                                 by the caller, `text` empty)
 *
 * @typedef {object} CallEntry    how a call went, as the conversation keeps it
 * @property {string} callId
 * @property {'audio'|'video'} media
 * @property {'missed'|'declined'|'answered'|'busy'} outcome
 * @property {number} [durationMs] answered calls: from the answer to the end
 *
 * @typedef {object} Call         a voice or video call in a direct channel
 * @property {string} callId
 * @property {string} channelId
 * @property {string} callerId
 * @property {string} calleeId
 * @property {'audio'|'video'} media
 * @property {'ringing'|'active'|'ended'} state
 * @property {number} startedAt    milliseconds since the epoch (server clock, like all here)
 * @property {number} ringUntil    the callee's devices ring until then
 * @property {number} [answeredAt]
 * @property {number} [endedAt]
 * @property {'missed'|'declined'|'answered'|'busy'} [outcome]  set once ended
 * @property {string} [endedBy]
 * @property {number} [durationMs]
 *
 * @typedef {object} Quote        what a reply shows of the message it answers
 * @property {string} messageId
 * @property {string} authorId
 * @property {string} text         its first 100 characters; "" once deleted
 * @property {boolean} [deleted]   true once the answered message is deleted
 *
 * @typedef {object} ReactionCount
 * @property {string} emoji
 * @property {number} count        members who reacted with it
 * @property {boolean} [me]        true when we are one of them
 *
 * @typedef {object} Attachment
 * @property {string} key
 * @property {string} fileName
 * @property {string} contentType
 * @property {number} size
 * @property {string} [url]        a download link valid for an hour (from the server)
 *
 * @typedef {object} Session     what sign up, sign in and refresh answer
 * @property {string} userId
 * @property {string} accessToken
 * @property {number} expiresIn           seconds
 * @property {string} refreshToken        single use
 * @property {number} refreshExpiresIn    seconds
 * @property {number} [obtainedAt]        added here: when it arrived (ms)
 *
 * @typedef {object} ChannelSummary  an entry of GET /channels
 * @property {string} channelId
 * @property {'group'|'direct'} kind
 * @property {string} [name]
 * @property {string} [peer]           direct channels: the other user
 * @property {string} role
 * @property {number} memberCount
 * @property {number} seq              messages so far
 * @property {string} [lastMessageId]
 * @property {number} unread           messages after the caller's read position
 * @property {number} mentions         of those, the ones that mention the caller
 * @property {number} lastReadSeq      the caller's read position
 * @property {number} changeSeq        changes (edits, deletions, reactions) so far: where a
 *                                     device that loads the channel now starts its `sync`
 *                                     change cursor
 * @property {boolean} [muted]         no push notifications for it
 *
 * @typedef {object} Presence
 * @property {'online'|'idle'|'dnd'|'offline'} status   idle: online, every device unused
 *                                     for a while; dnd: online, do not disturb
 * @property {number} [lastSeen]       milliseconds since the epoch
 * @property {CustomStatus} [customStatus]  gone here once it expires
 *
 * @typedef {object} CustomStatus    a short text and an emoji shown with a user's presence
 * @property {string} [text]           one line, at most 100 characters
 * @property {string} [emoji]          1-32 bytes without spaces
 * @property {number} [expiresAt]      milliseconds since the epoch; shown until then
 *
 * @typedef {object} ChosenPresence  what the user chose for all their devices
 * @property {'online'|'dnd'|'invisible'} state   online: online or idle, as the devices are
 *                                     used; invisible: looks offline to everyone else
 * @property {'contacts'|'nobody'} [lastSeen]   who sees when the user was last online
 *
 * @typedef {object} Invitation     an entry of GET /invitations: someone asks us to join
 * @property {string} channelId
 * @property {'group'|'direct'} kind
 * @property {string} [name]           groups: the group's name
 * @property {string} invitedBy
 * @property {'member'|'admin'} role   the role we get by accepting
 * @property {number} invitedAt        milliseconds since the epoch
 *
 * @typedef {object} ChannelView    what creating, opening, adding and accepting answer
 * @property {string} channelId
 * @property {'group'|'direct'} kind
 * @property {string} [name]
 * @property {{userId: string, role: string}[]} members   only people who accepted
 * @property {string[]} [invited]     who was just invited (they join when they accept)
 *
 * @typedef {object} SearchPage      what GET /search answers
 * @property {SearchHit[]} hits        newest first (or best first: `order=relevance`)
 * @property {string} [nextCursor]     the next page's `cursor`; absent on the last page
 *
 * @typedef {object} SearchHit
 * @property {Message} message         as history shows it now (deleted ones never come)
 * @property {SnippetFragment[]} snippet  the text around the match: concatenated, the
 *                                     fragments are the snippet; highlighted ones matched
 *
 * @typedef {object} SnippetFragment
 * @property {string} text
 * @property {boolean} [highlighted]   absent: false
 *
 * @typedef {object} Outgoing        a message of ours not yet acknowledged
 * @property {string} clientMsgId
 * @property {string} channelId
 * @property {string} text
 * @property {Attachment[]} attachments
 * @property {Quote} [replyTo]         the message it answers (its `messageId` goes out)
 * @property {string[]} [mentions]
 * @property {'queued'|'sent'|'waiting'|'failed'} state
 * @property {ChatError} [error]       why it is waiting or failed
 * @property {number} createdAt
 */

/** API Gateway closes the connection on a frame over 32 KB, and browsers send a message
 * as one frame. */
export const MAX_FRAME_BYTES = 32 * 1024;
export const MAX_TEXT_CHARS = 100_000;
const HISTORY_PAGE = 50;
/** Jumping to a message (a search hit) loads up to this many messages before it... */
const JUMP_CONTEXT = 25;
/** ...and every message between it and what is loaded, up to this many (beyond that, the
 * conversation would hold too much to draw: loadAround() refuses). */
const MAX_JUMP_GAP = 2000;
/** Past this many missed messages a channel reloads its latest page instead of catching up. */
const MAX_CATCH_UP = 500;
/** A `seq` gap still open after this long is read from history. */
const GAP_WAIT_MS = 1500;
const ACK_TIMEOUT_MS = 10_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A connection that stayed up this long resets the backoff. */
const STABLE_AFTER_MS = 5_000;
/** Refresh the access token when it has less than this left. */
const REFRESH_MARGIN_MS = 60_000;
/** The backend counts a user online for a while after each heartbeat (60 s). */
const HEARTBEAT_MS = 30_000;
/** A `typing` start is renewed this often while typing; a `stop` can be lost, so an
 * indicator is shown this long at most unless renewed. */
const TYPING_RENEW_MS = 3_000;
const TYPING_SHOWN_MS = 5_000;
/** Typing stops by itself after this long without a keystroke. */
const TYPING_IDLE_MS = 4_000;
/** At most this many users in one `subscribePresence`, `unsubscribePresence` or
 * `getPresence`. */
const PRESENCE_BATCH = 100;
/** A device nobody used for this long says so in its heartbeats (`idle: true`). */
export const IDLE_AFTER_MS = 5 * 60_000;
/** The states a user can choose (`setPresence`). */
export const PRESENCE_STATES = ['online', 'dnd', 'invisible'];
/** The longest custom status text, in characters (code points). */
export const MAX_STATUS_CHARS = 100;
/** Invitations are not pushed: they are asked for on every (re)connection, with every
 * channel list, and this often while connected. */
const INVITATION_POLL_MS = 10_000;
/** mentionable() reads a channel's member list at most this often. */
const MEMBERS_REREAD_MS = 5_000;
/** A direct chat we opened is watched this long for the other person accepting (the
 * channel list is re-read with each invitation poll meanwhile). */
const WATCH_INVITED_MS = 10 * 60_000;
/** The largest `signal` of a `callSignal` the server relays (its JSON). */
export const MAX_CALL_SIGNAL_BYTES = 16 * 1024;

/** An error from the server (an `error` frame or an HTTP error body), or a local refusal.
 * `code` is one of the stable codes of docs/PROTOCOL.md (`invalid_request`,
 * `unauthorized`, `forbidden`, `not_found`, `conflict`, `too_large`, `rate_limited`,
 * `internal`), or `network` / `gateway` for failures outside the backend's handlers. */
export class ChatError extends Error {
  /** @param {{code: string, message: string, status?: number, retryAfterMs?: number,
   *           action?: string, clientMsgId?: string}} fields */
  constructor({ code, message, status, retryAfterMs, action, clientMsgId }) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
    this.action = action;
    this.clientMsgId = clientMsgId;
  }
}

/** A `clientMsgId`: 1-64 of `A-Z a-z 0-9 _ - .`. getRandomValues works outside secure
 * contexts too, unlike crypto.randomUUID. */
export function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return 'w' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Compares decimal id strings without converting them to (imprecise) numbers. */
export function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** The id after a decimal id string (`before` of the history page that ends at it): as a
 * BigInt, ids past 2^53 stay exact. */
export function nextId(id) {
  return (BigInt(id) + 1n).toString();
}

// ------------------------------------------------------------------------ replies, mentions, reactions

/** The emoji a UI offers to react with (the server takes any 1-32 bytes without spaces). */
export const REACTION_EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
/** How much of the answered message a reply's quote holds, in characters (code points). */
export const QUOTE_CHARS = 100;
/** Characters of a user id, and those of them that cannot end a sentence. */
const USER_ID_CHAR = /[A-Za-z0-9_.-]/;
const WORD_CHAR = /[A-Za-z0-9_]/;

/** The quote a reply to `message` carries, as the server makes it. @returns {Quote} */
export function quoteOf(message) {
  /** @type {Quote} */
  const quote = {
    messageId: message.messageId,
    authorId: message.authorId,
    text: message.deleted ? '' : [...(message.text ?? '')].slice(0, QUOTE_CHARS).join(''),
  };
  if (message.deleted) quote.deleted = true;
  return quote;
}

/** The `@name` being typed where the caret is: `{start, query}` (`start`: where its `@`
 * is), or null when the caret is not in one. */
export function mentionQuery(text, caret = text.length) {
  const match = /(?:^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]*)$/.exec(text.slice(0, caret));
  return match ? { start: caret - match[1].length - 1, query: match[1] } : null;
}

/** `text` with the `@name` typed at `start` (what follows it of the name too) replaced by
 * `@userId` and a space: `{text, caret}`, the caret after the space. */
export function completeMention(text, start, caret, userId) {
  const rest = text.slice(caret).replace(/^[A-Za-z0-9_.-]*/, '');
  const inserted = `@${userId}` + (/^\s/.test(rest) ? '' : ' ');
  return { text: text.slice(0, start) + inserted + rest, caret: start + inserted.length };
}

/** The one of `userIds` whose `@userId` starts at `index` (the longest that fits), or
 * null. Not after a character of a user id (`mail@bob`), and not followed by one that
 * goes on with a name: `@bob.` ends a sentence, `@bob.smith` is someone else. */
function mentionAt(text, index, userIds) {
  if (text[index] !== '@' || (index > 0 && USER_ID_CHAR.test(text[index - 1]))) return null;
  let found = null;
  for (const userId of userIds) {
    if (!userId || (found && found.length >= userId.length) || !text.startsWith(userId, index + 1)) continue;
    let end = index + 1 + userId.length;
    while (end < text.length && (text[end] === '.' || text[end] === '-')) end++;
    if (end === text.length || !WORD_CHAR.test(text[end])) found = userId;
  }
  return found;
}

/** The members (of `userIds`) that `text` mentions as `@userId`, each once, in order: the
 * `mentions` of a send. */
export function mentionsIn(text, userIds) {
  const found = [];
  for (let i = text.indexOf('@'); i !== -1; i = text.indexOf('@', i + 1)) {
    const userId = mentionAt(text, i, userIds);
    if (userId && !found.includes(userId)) found.push(userId);
  }
  return found;
}

/** `text` cut into plain parts and the mentions of `userIds` in it, to show them apart:
 * `[{text: 'hi '}, {text: '@bob', userId: 'bob'}, …]`. */
export function mentionParts(text, userIds = []) {
  const parts = [];
  let plain = 0;
  for (let i = userIds.length ? text.indexOf('@') : -1; i !== -1; i = text.indexOf('@', i + 1)) {
    const userId = mentionAt(text, i, userIds);
    if (!userId) continue;
    if (i > plain) parts.push({ text: text.slice(plain, i) });
    parts.push({ text: `@${userId}`, userId });
    plain = i + 1 + userId.length;
    i = plain - 1;
  }
  if (plain < text.length || parts.length === 0) parts.push({ text: text.slice(plain) });
  return parts;
}

// ------------------------------------------------------------------------ presence

/** A custom status as it shows at `now`: null once it has expired, or when it says nothing.
 * @param {CustomStatus|null|undefined} customStatus
 * @returns {CustomStatus|null} */
export function shownStatus(customStatus, now = Date.now()) {
  if (!customStatus || (!customStatus.text && !customStatus.emoji)) return null;
  if (customStatus.expiresAt !== undefined && customStatus.expiresAt !== null && customStatus.expiresAt <= now) return null;
  return customStatus;
}

/** `fields` without the ones that are undefined. */
function compact(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/** The `setStatus` frame for a custom status, checked as the server checks it: the text one
 * line of at most MAX_STATUS_CHARS characters (blank: none), the emoji 1-32 bytes without
 * spaces. Without text and emoji it clears the status. Throws a ChatError (`too_large`,
 * `invalid_request`) otherwise. */
export function statusFrame({ text, emoji, expiresAt } = {}) {
  const frame = { action: 'setStatus' };
  const line = (text ?? '').trim();
  if (line) {
    const chars = [...line].length;
    if (chars > MAX_STATUS_CHARS) {
      throw new ChatError({
        code: 'too_large',
        message: `a custom status has ${chars} characters; the limit is ${MAX_STATUS_CHARS}`,
      });
    }
    if (/[\u0000-\u001f\u007f-\u009f]/.test(line)) {
      throw new ChatError({ code: 'invalid_request', message: 'a custom status is one line' });
    }
    frame.text = line;
  }
  const symbol = (emoji ?? '').trim();
  if (symbol) {
    const bytes = new TextEncoder().encode(symbol).length;
    if (bytes > 32 || /\s/.test(symbol)) {
      throw new ChatError({ code: 'invalid_request', message: 'an emoji is 1-32 bytes without spaces' });
    }
    frame.emoji = symbol;
  }
  if ((frame.text || frame.emoji) && Number.isFinite(expiresAt)) frame.expiresAt = Math.round(expiresAt);
  return frame;
}

// ------------------------------------------------------------------------ HTTP API

/** The HTTP API. Every route but /auth/* sends `Authorization: Bearer <access token>`;
 * a 401/403 from the authorizer refreshes the token once and retries. */
export class HttpApi {
  /** @param {string} baseUrl  e.g. `http://127.0.0.1:8080` or the HttpApi's URL in AWS
   *  @param {Tokens} tokens */
  constructor(baseUrl, tokens) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.tokens = tokens;
  }

  /** @returns {Promise<Session>} */
  signUp(username, password) {
    return this.#call('POST', '/auth/signup', { username, password }, false);
  }
  /** @returns {Promise<Session>} */
  signIn(username, password) {
    return this.#call('POST', '/auth/signin', { username, password }, false);
  }
  /** @returns {Promise<Session>} a new session; the refresh token is used up */
  refresh(refreshToken) {
    return this.#call('POST', '/auth/refresh', { refreshToken }, false);
  }
  /** Ends this device's session (`everywhere`: every device's) on the server: its refresh
   * token stops working and its WebSockets are closed. */
  signOut(everywhere) {
    return this.#call('POST', '/auth/signout', { everywhere: Boolean(everywhere) });
  }
  /** @returns {Promise<{channels: ChannelSummary[]}>} most recently active first */
  listChannels() {
    return this.#call('GET', '/channels');
  }
  /** A group owned by the caller; `members` are invited (`invited` in the answer).
   * @returns {Promise<ChannelView>} */
  createGroup(name, members) {
    return this.#call('POST', '/channels', { name, members });
  }
  /** The direct channel with `userId` (the same one whoever opens it). Opening is consent:
   * the caller is in it at once; the other person is invited unless they opened it first.
   * @returns {Promise<ChannelView>} */
  openDirect(userId) {
    return this.#call('POST', '/channels/direct', { userId });
  }
  /** @returns {Promise<{invitations: Invitation[]}>} oldest first */
  invitations() {
    return this.#call('GET', '/invitations');
  }
  /** Joins the channel of a pending invitation. @returns {Promise<ChannelView>} */
  acceptInvitation(channelId) {
    return this.#call('POST', `/invitations/${encodeURIComponent(channelId)}/accept`, {});
  }
  declineInvitation(channelId) {
    return this.#call('POST', `/invitations/${encodeURIComponent(channelId)}/decline`, {});
  }
  /** @returns {Promise<{blocked: string[]}>} the users the caller blocks, sorted */
  blocked() {
    return this.#call('GET', '/blocks');
  }
  /** The user can no longer invite the caller, open a direct chat with them or see their
   * presence. Nothing tells them. */
  block(userId) {
    return this.#call('POST', '/blocks', { userId });
  }
  unblock(userId) {
    return this.#call('DELETE', `/blocks/${encodeURIComponent(userId)}`);
  }
  /** The channel and its members (`{channelId, kind, name?, members: [{userId, role}]}`).
   * @returns {Promise<ChannelView>} */
  channel(channelId) {
    return this.#call('GET', `/channels/${encodeURIComponent(channelId)}`);
  }
  /** Invites people to a group (`invited` in the answer); they join when they accept.
   * @returns {Promise<ChannelView>} */
  addMembers(channelId, userIds, role = 'member') {
    return this.#call('POST', `/channels/${encodeURIComponent(channelId)}/members`, { userIds, role });
  }
  /** Removes a member, or leaves when `userId` is the caller. */
  removeMember(channelId, userId) {
    const path = `/channels/${encodeURIComponent(channelId)}/members/${encodeURIComponent(userId)}`;
    return this.#call('DELETE', path);
  }
  /** Mutes (no push notifications) or unmutes a channel for the caller. */
  mute(channelId, muted) {
    return this.#call('POST', `/channels/${encodeURIComponent(channelId)}/mute`, { muted });
  }
  /** A grant to upload one file straight to S3: `{url, fields, key, expiresAt, maxBytes}`. */
  uploadGrant(channelId, { fileName, contentType, size }) {
    return this.#call('POST', `/channels/${encodeURIComponent(channelId)}/uploads`, { fileName, contentType, size });
  }
  /** A fresh download link for an attachment (links in messages last an hour). */
  attachmentUrl(channelId, key) {
    const path = `/channels/${encodeURIComponent(channelId)}/attachments?key=${encodeURIComponent(key)}`;
    return this.#call('GET', path);
  }
  /** Full-text search over the messages of the caller's channels (`channelId`: one of
   * them). `q`: words, "quoted phrases", the last word also as a prefix; `from`: an
   * author's userId; `before`/`after`: createdAt bounds (ms, exclusive); `hasFile`;
   * `order`: `newest` (default) or `relevance`; `limit` 1-50; `cursor`: the previous
   * page's `nextCursor`.
   * @returns {Promise<SearchPage>} */
  search({ q, channelId, from, before, after, hasFile, order, limit, cursor }) {
    const query = new URLSearchParams({ q });
    if (channelId) query.set('channelId', channelId);
    if (from) query.set('from', from);
    if (before !== undefined && before !== null) query.set('before', String(before));
    if (after !== undefined && after !== null) query.set('after', String(after));
    if (hasFile !== undefined && hasFile !== null) query.set('hasFile', String(Boolean(hasFile)));
    if (order) query.set('order', order);
    if (limit) query.set('limit', String(limit));
    if (cursor) query.set('cursor', cursor);
    return this.#call('GET', `/search?${query}`);
  }
  /** A page of history, newest first; `nextBefore` continues to older messages.
   * @returns {Promise<{messages: Message[], nextBefore?: string}>} */
  history(channelId, { before, after, limit } = {}) {
    const query = new URLSearchParams();
    if (before) query.set('before', before);
    if (after) query.set('after', after);
    if (limit) query.set('limit', String(limit));
    return this.#call('GET', `/channels/${encodeURIComponent(channelId)}/messages?${query}`);
  }

  async #call(method, path, body, authorized = true, retried = false) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (authorized) headers.authorization = `Bearer ${await this.tokens.accessToken()}`;
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ChatError({ code: 'network', message: `cannot reach the server (${err.message})` });
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: a proxy's error page, say. The status tells what happened.
    }
    if (response.ok) return json;
    // The authorizer answers 401 (no token) or 403 (bad or expired token) with
    // `{"message": ...}` and no `code`: a fresh token may fix that, once.
    const fromAuthorizer = (response.status === 401 || response.status === 403) && !json?.code;
    if (authorized && fromAuthorizer && !retried && (await this.tokens.refreshNow())) {
      return this.#call(method, path, body, authorized, true);
    }
    // A 429 without a body of ours is API Gateway's own throttling: `Retry-After` (seconds)
    // says how long to wait, when it says anything.
    const throttled = response.status === 429;
    const retryAfter = Number(response.headers.get('retry-after'));
    throw new ChatError({
      code:
        json?.code ??
        (fromAuthorizer ? 'unauthorized' : throttled ? 'rate_limited' : response.status >= 500 ? 'internal' : 'gateway'),
      message: json?.message ?? `HTTP ${response.status}`,
      status: response.status,
      retryAfterMs: json?.retryAfterMs ?? (throttled && retryAfter > 0 ? retryAfter * 1000 : undefined),
    });
  }
}

// ------------------------------------------------------------------------ tokens

/** Holds the session; refreshes the access token before it expires (one refresh at a time:
 * refresh tokens are single use, and the server ends a session whose refresh token is used
 * twice). Tabs that share a stored session take turns (Web Locks, where there are): whoever
 * waited uses the session the other one stored instead of refreshing again. */
export class Tokens {
  /** @param {(session: Session|null) => void} onChange  persist it, or forget it on null
   *  @param {() => Session|null} [stored]  the session as stored now (other tabs write it) */
  constructor(onChange, stored = () => null) {
    /** @type {Session|null} */
    this.session = null;
    /** @type {HttpApi|null} */
    this.api = null;
    this.onChange = onChange;
    this.stored = stored;
    /** @type {Promise<boolean>|null} */
    this.refreshing = null;
  }

  /** @param {Session|null} session */
  set(session) {
    if (session && !session.obtainedAt) session = { ...session, obtainedAt: Date.now() };
    this.session = session;
    this.onChange(session);
  }

  /** A newer session of the same user that another tab stored: used from now on (not
   * passed to onChange, it is stored already). Refresh tokens are single use, and one used
   * twice ends the whole session, so a tab must not keep refreshing with a spent one. */
  adopt(session) {
    if (!session || !this.session || session.userId !== this.session.userId) return;
    if ((session.obtainedAt ?? 0) > (this.session.obtainedAt ?? 0)) this.session = session;
  }

  expiresAt() {
    const s = this.session;
    return s ? s.obtainedAt + s.expiresIn * 1000 : 0;
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken() {
    if (!this.session) throw new ChatError({ code: 'unauthorized', message: 'not signed in' });
    if (this.expiresAt() - Date.now() < REFRESH_MARGIN_MS) await this.refreshNow();
    if (!this.session) throw new ChatError({ code: 'unauthorized', message: 'the session has ended' });
    return this.session.accessToken;
  }

  /** Trades the refresh token for a new session. False when that failed; when the server
   * refused the refresh token, the session is over (set to null). */
  refreshNow() {
    if (!this.session || !this.api) return Promise.resolve(false);
    const spent = this.session;
    this.refreshing ??= Tokens.#exclusive(async () => {
      try {
        // Another tab refreshed while we waited for our turn: its session is the live one.
        this.adopt(this.stored());
        if (this.session !== spent) return Boolean(this.session);
        this.set(await this.api.refresh(spent.refreshToken));
        return true;
      } catch (err) {
        if (err.code === 'unauthorized') this.set(null);
        return false;
      } finally {
        this.refreshing = null;
      }
    });
    return this.refreshing;
  }

  /** Runs `fn` while no other tab of this origin runs its own (where Web Locks exist). */
  static #exclusive(fn) {
    const locks = globalThis.navigator?.locks;
    return locks ? locks.request('chat-session-refresh', fn) : fn();
  }
}

// ------------------------------------------------------------------------ timeline

/** One channel's messages, ordered by `seq`. Knows the last message up to which nothing is
 * missing (`contiguous`), which is where a catch-up reads from. */
export class Timeline {
  constructor(channelId) {
    this.channelId = channelId;
    /** @type {Map<number, Message>} */
    this.bySeq = new Map();
    /** Highest seq with every message from the oldest loaded one up to it present. */
    this.contiguousSeq = 0;
    /** @type {string|null} the messageId of contiguousSeq */
    this.contiguousId = null;
    /** @type {string|null} cursor for older messages; null when the oldest is loaded */
    this.olderCursor = null;
    this.loaded = false;
    /** @type {number|null} the change position up to which every edit, deletion and
     * reaction of the channel is applied here: the `changes` cursor of the next `sync`. */
    this.changeCursor = null;
    /** @type {Map<string, number>} messageId -> seq */
    this.ids = new Map();
  }

  /** Whether `seq` is within what is loaded (older messages come from history, as they
   * now are, when the page before is read). */
  holds(seq) {
    if (this.olderCursor === null) return true;
    let oldest = Infinity;
    for (const known of this.bySeq.keys()) oldest = Math.min(oldest, known);
    return seq >= oldest;
  }

  /** Adds messages, or newer versions of them (edited, deleted, reacted to); answers how
   * many changed the timeline. `complete`: they are as they now are, reactions included
   * (history, sync); otherwise (acks, live events) they carry no reactions, and the
   * reactions already here stay. */
  add(messages, { complete = false } = {}) {
    let added = 0;
    for (const m of messages) {
      const known = this.bySeq.get(m.seq);
      const next = Timeline.merge(known, m, complete);
      if (next === known) continue;
      this.bySeq.set(m.seq, next);
      this.ids.set(next.messageId, m.seq);
      added++;
    }
    added += this.requote(messages);
    while (this.bySeq.has(this.contiguousSeq + 1)) {
      this.contiguousSeq++;
      this.contiguousId = this.bySeq.get(this.contiguousSeq).messageId;
    }
    return added;
  }

  /** The first page: the newest messages, which have no gaps among them. */
  reset(page) {
    this.bySeq.clear();
    this.ids.clear();
    const newest = page.messages[0];
    const oldest = page.messages[page.messages.length - 1];
    this.contiguousSeq = oldest ? oldest.seq - 1 : 0;
    this.contiguousId = null;
    this.add(page.messages, { complete: true });
    if (!newest) this.contiguousSeq = 0;
    this.olderCursor = page.nextBefore ?? null;
    this.loaded = true;
  }

  /** A loaded message by its id. @returns {Message|undefined} */
  byId(messageId) {
    const seq = this.ids.get(messageId);
    return seq === undefined ? undefined : this.bySeq.get(seq);
  }

  /** Updates can overtake the message they are about, and history can be older than a
   * live update: the deleted or more recently edited version wins. */
  static isNewer(message, known) {
    if (known.deleted) return false;
    return Boolean(message.deleted) || (message.editedAt ?? 0) > (known.editedAt ?? 0);
  }

  /** The stored copy of a message once `m` arrived (`known` itself when nothing changed).
   * Text and deletion follow isNewer(); reactions come only with complete messages, and
   * only when newer than those here (`reactionsAt`: the change position they are as of,
   * which live `reaction` frames move too; `mineAt`: the same for `me`, see react()). A
   * quote shown deleted stays so. */
  static merge(known, m, complete) {
    if (!known) return complete ? { ...m, reactionsAt: m.changeSeq ?? 0, mineAt: m.changeSeq ?? 0 } : m;
    let next = known;
    if (Timeline.isNewer(m, known)) {
      const { reactions, reactionsAt, mineAt, meAt } = known;
      next = { ...known, ...m, reactions, reactionsAt, mineAt, meAt };
      if (known.changeSeq !== undefined) next.changeSeq = Math.max(known.changeSeq, m.changeSeq ?? 0);
      if (known.replyTo?.deleted) next.replyTo = known.replyTo;
    }
    if (complete && !next.deleted && (m.changeSeq ?? 0) > (known.reactionsAt ?? 0)) {
      next = { ...next, reactions: m.reactions ?? [], reactionsAt: m.changeSeq, mineAt: m.changeSeq, meAt: undefined };
    }
    return next;
  }

  /** Replies show the message they answer as it is here: a quote comes as the message was
   * when the reply was sent (live), and the message can be edited or deleted since. Looks
   * at the replies among `messages` and at those that answer one of `messages` (which
   * need not be loaded: a deletion of an older one still shows); answers how many quotes
   * changed. */
  requote(messages) {
    const incoming = new Map(messages.map((m) => [m.messageId, m]));
    let changed = 0;
    for (const [seq, reply] of this.bySeq) {
      const quote = reply.replyTo;
      if (!quote || quote.deleted || !(incoming.has(reply.messageId) || incoming.has(quote.messageId))) continue;
      const answered = this.byId(quote.messageId) ?? incoming.get(quote.messageId);
      // A deletion that overtook its message has no text to quote, and needs none.
      if (!answered || (!answered.deleted && answered.text === undefined)) continue;
      const now = { ...quoteOf(answered), authorId: quote.authorId };
      if (now.text === quote.text && Boolean(now.deleted) === Boolean(quote.deleted)) continue;
      this.bySeq.set(seq, { ...reply, replyTo: now });
      changed++;
    }
    return changed;
  }

  /** Applies a `reaction` frame (`userId`: us); answers whether the message changed.
   * Frames can overtake each other: the counts of one older than those here
   * (`reactionsAt`) are dropped, and so is what an own frame says about `me` for its emoji
   * when a newer one said it already (`meAt`). An answer without `changeSeq` changed
   * nothing on the server: it only tells whether we reacted. */
  react(frame, userId) {
    const known = this.bySeq.get(frame.seq);
    if (!known || known.deleted || known.messageId !== frame.messageId) return false;
    const before = known.reactions ?? [];
    const next = { ...known };
    let counts = before;
    const newer =
      frame.changeSeq === undefined
        ? frame.added && !before.some((r) => r.emoji === frame.emoji)
        : frame.changeSeq > (known.reactionsAt ?? 0);
    if (newer) {
      counts = frame.reactions;
      if (frame.changeSeq !== undefined) {
        next.reactionsAt = frame.changeSeq;
        next.changeSeq = Math.max(known.changeSeq ?? 0, frame.changeSeq);
      }
    }
    // The frame goes to every member alike: whether we reacted is kept here.
    const mine = new Set(before.filter((r) => r.me).map((r) => r.emoji));
    if (frame.userId === userId) {
      const said = Math.max(known.mineAt ?? 0, known.meAt?.[frame.emoji] ?? 0);
      if (frame.changeSeq === undefined || frame.changeSeq > said) {
        if (frame.added) mine.add(frame.emoji);
        else mine.delete(frame.emoji);
        if (frame.changeSeq !== undefined) next.meAt = { ...known.meAt, [frame.emoji]: frame.changeSeq };
      }
    }
    next.reactions = counts.map(({ emoji, count }) => (mine.has(emoji) ? { emoji, count, me: true } : { emoji, count }));
    this.bySeq.set(frame.seq, next);
    return JSON.stringify(next.reactions) !== JSON.stringify(before);
  }

  hasGap() {
    for (const seq of this.bySeq.keys()) if (seq > this.contiguousSeq) return true;
    return false;
  }

  /** @returns {Message[]} oldest first */
  messages() {
    return [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
  }
}

// ------------------------------------------------------------------------ the client

/**
 * A signed-in user's view of the chat: channels, timelines, outbox and one WebSocket.
 *
 * Events (`addEventListener`): `status` ({state: 'connecting'|'open'|'waiting'|'closed',
 * retryInMs?}), `channels` (the list, its unread and mention counts), `timeline`
 * ({channelId}: its messages changed: new ones, edits, deletions, reactions), `message`
 * ({message}: a live one from someone else or another device of ours), `outbox` ({channelId}), `typing` ({channelId}), `receipts` ({channelId}),
 * `presence` ({userId}; none: everyone's was forgotten), `me` (our chosen state, custom
 * status, idleness, or how others see us changed), `invitations` (the pending list
 * changed), `blocked` (the list of users we block changed), `members` ({channelId}: its
 * member list was read), `error` ({error: ChatError}), `session` ({session: Session|null};
 * null means signed out), `call` (a call frame as it came: `callStarted`, `incomingCall`,
 * `callAccepted`, `callEnded` or `callSignal`; calls.js acts on them).
 *
 * Presence is not pushed by itself: the server tells a connection about the users it
 * subscribed to. Tell the client whom the UI shows with showPresence(); it subscribes,
 * unsubscribes and subscribes again after every reconnect (a subscription lasts as long as
 * its connection: nothing is renewed).
 */
export class ChatClient extends EventTarget {
  /** @param {{apiBaseUrl: string, webSocketUrl: string, session?: Session|null,
   *           storedSession?: () => Session|null, idleAfterMs?: number, historyPage?: number}} options
   *   `storedSession`: the session as persisted now, when tabs share it (see Tokens);
   *   `idleAfterMs`: how long without noteActivity() makes this device idle;
   *   `historyPage`: messages per page of history (1-100) */
  constructor({
    apiBaseUrl,
    webSocketUrl,
    session = null,
    storedSession,
    idleAfterMs = IDLE_AFTER_MS,
    historyPage = HISTORY_PAGE,
  }) {
    super();
    this.historyPage = Math.min(100, Math.max(1, Math.round(historyPage) || HISTORY_PAGE));
    this.webSocketUrl = webSocketUrl;
    this.tokens = new Tokens((s) => this.#emit('session', { session: s }), storedSession);
    this.api = new HttpApi(apiBaseUrl, this.tokens);
    this.tokens.api = this.api;
    this.tokens.session = session;
    /** @type {Map<string, ChannelSummary>} */
    this.channels = new Map();
    /** @type {Map<string, Timeline>} */
    this.timelines = new Map();
    /** @type {Map<string, Outgoing>} by clientMsgId, in sending order */
    this.outbox = new Map();
    /** @type {WebSocket|null} */
    this.socket = null;
    this.state = 'closed';
    this.attempt = 0;
    this.failedOpens = 0;
    this.timers = new Set();
    this.running = false;
    /** @type {Map<string, Presence>} by userId: of the users shown (see showPresence) */
    this.presence = new Map();
    /** Whose presence the UI shows: users, and channels whose members it shows. */
    this.shownUsers = new Set();
    this.shownChannels = new Set();
    /** What this connection subscribed to (cleared with each new connection). */
    this.subscribedUsers = new Set();
    this.subscribedChannels = new Set();
    /** @type {ChosenPresence} ours, sent again after each connect unless plain online */
    this.chosen = { state: 'online' };
    /** @type {CustomStatus|null} ours, sent again after each connect while it shows */
    this.customStatus = null;
    /** The custom status before the last change (back to it when the server refuses). */
    this.customStatusBefore = null;
    /** Changes made while not connected, sent on the next connection. */
    this.chosenUnsent = false;
    this.statusUnsent = false;
    /** @type {Presence|null} how others see us (the answers to setPresence, setStatus) */
    this.me = null;
    /** This device: unused for idleAfterMs (heartbeats say `idle: true`). */
    this.idleAfterMs = idleAfterMs;
    this.idle = false;
    this.lastActivity = Date.now();
    this.idleTimer = null;
    /** @type {Map<string, Map<string, number>>} channelId -> userId -> until (ms) */
    this.typists = new Map();
    /** @type {Map<string, Map<string, number>>} channelId -> userId -> seq read up to */
    this.reads = new Map();
    /** @type {Map<string, {sentAt: number, idle: any}>} our own typing, by channel */
    this.myTyping = new Map();
    this.heartbeat = null;
    this.reconnectTimer = null;
    /** @type {Invitation[]} pending invitations to us, oldest first */
    this.invitations = [];
    /** When the newest applied GET /invitations was asked (ms); 0 before the first. */
    this.invitationsAskedAt = 0;
    /** Bumped by every local change of `invitations`, so an older poll cannot undo it. */
    this.invitationChanges = 0;
    this.invitationPoll = null;
    /** @type {string[]} users we block, sorted */
    this.blocked = [];
    /** @type {Map<string, {users: Set<string>, at: number}>} by channelId: whom we invited
     * there (in this session) and when; they are no members until they accept */
    this.invited = new Map();
    /** @type {Map<string, {userId: string, role: string}[]>} members of channels, as last read */
    this.members = new Map();
    /** Channels whose lists are about to be read again (see #noticeAuthor). */
    this.rereading = new Set();
    /** @type {Map<string, number>} by channelId: when mentionable() last asked for its
     * members (ms) */
    this.membersAskedAt = new Map();
    /** True from signOut() on: the server closing our WebSocket is expected then. */
    this.signingOut = false;
    /** True once signed out on purpose (not because the session ran out). */
    this.signedOut = false;
    /** The server closed the connection normally (1000): maybe this session was ended on
     * another device. The next connection refreshes the token first to find out. */
    this.checkSession = false;
  }

  get userId() {
    return this.tokens.session?.userId ?? null;
  }

  async signUp(username, password) {
    this.tokens.set(await this.api.signUp(username, password));
  }

  async signIn(username, password) {
    this.tokens.set(await this.api.signIn(username, password));
  }

  /** Loads the channel list and keeps a WebSocket open until stop(). */
  async start() {
    this.running = true;
    this.noteActivity();
    await this.refreshChannels().catch((err) => this.#report(err));
    this.refreshBlocked().catch((err) => this.#report(err));
    clearInterval(this.invitationPoll);
    this.invitationPoll = setInterval(() => this.#poll(), INVITATION_POLL_MS);
    this.#connect();
  }

  stop() {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeat);
    clearInterval(this.invitationPoll);
    clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, 'client stopped');
    }
    this.#setState('closed');
  }

  /**
   * Signs out: ends the session on the server (`everywhere`: on every device of the user,
   * whose WebSockets the server closes), then here. The server closing our own WebSocket
   * meanwhile is not a reason to reconnect. A backend without the route (404) or a session
   * that is over already still signs out here; any other failure of `everywhere` throws
   * and leaves us signed in (the other devices would stay signed in otherwise), while this
   * device alone signs out locally anyway and answers the error.
   * @returns {Promise<ChatError|null>} a failure to tell the server, when signed out anyway
   */
  async signOut({ everywhere = false } = {}) {
    this.signingOut = true;
    let problem = null;
    try {
      await this.api.signOut(everywhere);
    } catch (err) {
      const over = err.status === 404 || err.code === 'unauthorized';
      if (!over) problem = err;
    }
    if (problem && everywhere) {
      this.signingOut = false;
      if (this.running && !this.socket && this.state !== 'connecting') this.#scheduleReconnect();
      throw problem;
    }
    this.signedOut = true;
    this.stop();
    this.tokens.set(null);
    return problem;
  }

  /** Reconnects at once instead of waiting out the backoff (after the browser's `online`). */
  reconnectNow() {
    if (!this.running || this.state === 'open' || this.state === 'connecting') return;
    clearTimeout(this.reconnectTimer);
    this.#connect();
  }

  /** Reads the channel list (and, with it, the pending invitations). */
  async refreshChannels() {
    this.refreshInvitations().catch((err) => this.#background(err, 'invitations'));
    const { channels } = await this.api.listChannels();
    const before = this.channels;
    for (const c of channels) {
      c.unread ??= 0;
      c.mentions ??= 0;
      c.lastReadSeq ??= 0;
    }
    this.channels = new Map(channels.map((c) => [c.channelId, c]));
    // A direct chat whose other person just accepted: their presence is visible from now on.
    const joined = channels.filter((c) => c.peer && c.memberCount >= 2 && (before.get(c.channelId)?.memberCount ?? 2) < 2);
    for (const c of joined) {
      this.invited.delete(c.channelId);
      this.presence.delete(c.peer);
    }
    this.#emit('channels');
    return channels;
  }

  /** Reads the pending invitations (they are not pushed). An answer older than the last
   * one applied, or than a local change (accept, decline, block), is dropped. */
  async refreshInvitations() {
    const askedAt = Date.now();
    const changes = this.invitationChanges;
    const { invitations } = await this.api.invitations();
    if (changes !== this.invitationChanges || askedAt < this.invitationsAskedAt) return this.invitations;
    this.invitations = invitations;
    this.invitationsAskedAt = askedAt;
    this.#emit('invitations');
    return invitations;
  }

  /** Joins the channel of an invitation: it is listed, with everything sent before.
   * @returns {Promise<ChannelView>} */
  async acceptInvitation(channelId) {
    try {
      const view = await this.api.acceptInvitation(channelId);
      this.#dropInvitations((i) => i.channelId === channelId);
      await this.refreshChannels();
      return view;
    } catch (err) {
      // Withdrawn, lapsed, or its inviter blocked meanwhile: it is gone.
      if (err.code === 'not_found') this.#dropInvitations((i) => i.channelId === channelId);
      throw err;
    }
  }

  async declineInvitation(channelId) {
    await this.api.declineInvitation(channelId);
    this.#dropInvitations((i) => i.channelId === channelId);
  }

  /** Reads the list of users we block. */
  async refreshBlocked() {
    const { blocked } = await this.api.blocked();
    this.blocked = blocked;
    this.#emit('blocked');
    return blocked;
  }

  /** Blocks a user; their pending invitations to us go too. */
  async block(userId) {
    await this.api.block(userId);
    if (!this.blocked.includes(userId)) this.blocked = [...this.blocked, userId].sort();
    this.#emit('blocked');
    this.#dropInvitations((i) => i.invitedBy === userId);
  }

  async unblock(userId) {
    await this.api.unblock(userId);
    this.blocked = this.blocked.filter((u) => u !== userId);
    this.#emit('blocked');
  }

  /** Who was invited to a channel and has not joined yet, as far as we know: the other
   * person of a direct chat with one member, or whom we invited to a group in this session
   * (minus those its member list, when read, shows). */
  invitedTo(channelId) {
    const channel = this.channels.get(channelId);
    if (channel?.kind === 'direct') return channel.memberCount < 2 && channel.peer ? [channel.peer] : [];
    return [...(this.invited.get(channelId)?.users ?? [])];
  }

  /** Reads a channel's members (whom we invited and who now shows up there is no longer
   * counted as invited). A shown channel (see showPresence) with new members is
   * subscribed to again, which covers them. */
  async loadMembers(channelId) {
    const view = await this.api.channel(channelId);
    const before = this.members.get(channelId);
    this.members.set(channelId, view.members);
    const joined = before && view.members.some((m) => !before.some((b) => b.userId === m.userId));
    if (joined && this.subscribedChannels.has(channelId)) this.#subscribeChannel(channelId);
    const invited = this.invited.get(channelId);
    for (const member of view.members) invited?.users.delete(member.userId);
    if (invited?.users.size === 0) this.invited.delete(channelId);
    this.#emit('members', { channelId });
    return view;
  }

  /** Who a message in `channelId` can mention: its members other than us, as last read.
   * They are read (the `members` event tells) when not read yet, or when the channel
   * list counts a different number of members (someone joined or left), at most every
   * few seconds. @returns {string[]} */
  mentionable(channelId) {
    const members = this.members.get(channelId);
    const channel = this.channels.get(channelId);
    const stale = !members || (channel && members.length !== channel.memberCount);
    if (stale && channel && Date.now() - (this.membersAskedAt.get(channelId) ?? 0) > MEMBERS_REREAD_MS) {
      this.membersAskedAt.set(channelId, Date.now());
      this.loadMembers(channelId).catch((err) => this.#background(err, 'members'));
    }
    return (members ?? []).map((m) => m.userId).filter((userId) => userId !== this.userId);
  }

  /** Channels, most recently active first. */
  channelList() {
    return [...this.channels.values()].sort(
      (a, b) => compareIds(b.lastMessageId ?? '0', a.lastMessageId ?? '0') || a.channelId.localeCompare(b.channelId),
    );
  }

  /** Creates a group and lists it; `members` are invited (see `view.invited`).
   * @returns {Promise<ChannelView>} */
  async createGroup(name, members) {
    const view = await this.api.createGroup(name, members);
    this.#noteInvited(view);
    await this.refreshChannels();
    return view;
  }

  /** Opens the direct chat with `userId`; they are invited unless they opened it first.
   * @returns {Promise<ChannelView>} */
  async openDirect(userId) {
    const view = await this.api.openDirect(userId);
    this.#noteInvited(view);
    await this.refreshChannels();
    return view;
  }

  /** Invites people to a group. @returns {Promise<ChannelView>} */
  async addMembers(channelId, userIds) {
    const view = await this.api.addMembers(channelId, userIds);
    this.#noteInvited(view);
    await this.refreshChannels();
    return view;
  }

  /** @returns {Timeline} */
  timeline(channelId) {
    let timeline = this.timelines.get(channelId);
    if (!timeline) {
      timeline = new Timeline(channelId);
      this.timelines.set(channelId, timeline);
    }
    return timeline;
  }

  /** Reads the newest page of a channel the first time, or catches up after that. */
  async open(channelId) {
    const timeline = this.timeline(channelId);
    if (timeline.loaded) return this.#catchUp(channelId);
    await this.#load(timeline);
    this.#settleOutbox(timeline.messages());
    this.#emit('timeline', { channelId });
  }

  /** Loads the page before the oldest loaded message. */
  async loadOlder(channelId) {
    const timeline = this.timeline(channelId);
    if (!timeline.olderCursor) return;
    const page = await this.api.history(channelId, { before: timeline.olderCursor, limit: this.historyPage });
    timeline.add(page.messages, { complete: true });
    timeline.olderCursor = page.nextBefore ?? null;
    this.#emit('timeline', { channelId });
  }

  /** Searches the messages of our channels (see HttpApi.search()). @returns {Promise<SearchPage>} */
  search(params) {
    return this.api.search(params);
  }

  /**
   * Makes the channel's timeline hold `messageId` (a search hit, say) with messages around
   * it: up to JUMP_CONTEXT before it (the history page ending at it), and every message
   * between it and the ones loaded already (pages of `after` it, newest first), so that the
   * timeline stays one unbroken run up to the newest message, as catch-up and live
   * messages need it. Answers whether the message is there (false: it is gone, deleted
   * for good or in a channel we left). Refuses (`too_far`) a message with more than
   * MAX_JUMP_GAP messages between it and those loaded.
   * @returns {Promise<boolean>}
   */
  async loadAround(channelId, messageId) {
    const timeline = this.timeline(channelId);
    if (!timeline.loaded) await this.open(channelId);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (timeline.byId(messageId)) return true;
      const oldest = timeline.messages()[0];
      // Everything is loaded, or the message is newer than the oldest loaded one (a gap a
      // catch-up fills): not in this channel's history (any more).
      if (!timeline.olderCursor || !oldest || compareIds(messageId, oldest.messageId) > 0) {
        await this.#catchUp(channelId);
        return Boolean(timeline.byId(messageId));
      }
      const limit = Math.min(JUMP_CONTEXT, this.historyPage);
      const page = await this.api.history(channelId, { before: nextId(messageId), limit });
      const target = page.messages.find((m) => m.messageId === messageId);
      if (!target) return false;
      if (oldest.seq - target.seq - 1 > MAX_JUMP_GAP) {
        throw new ChatError({
          code: 'too_far',
          message: `that message is ${oldest.seq - target.seq} messages back: scroll up with "Load older messages"`,
        });
      }
      const between = [];
      let before = oldest.messageId;
      while (before) {
        const older = await this.api.history(channelId, { after: messageId, before, limit: 100 });
        between.push(...older.messages);
        before = older.nextBefore;
      }
      // Older messages were loaded meanwhile, or the timeline was read anew (a long
      // catch-up): what was read may not fit it any more; look again.
      if (timeline.messages()[0]?.messageId !== oldest.messageId) continue;
      timeline.add([...between, ...page.messages], { complete: true });
      timeline.olderCursor = page.nextBefore ?? null;
      this.#emit('timeline', { channelId });
      return true;
    }
    return Boolean(timeline.byId(messageId));
  }

  /** Queues a message; it goes out now if connected, else on the next connection.
   * `replyTo`: the message it answers (of the same channel); `mentions`: the members it
   * mentions (see mentionsIn(): those whose `@userId` is in the text).
   * @param {{replyTo?: Message, mentions?: string[]}} [options]
   * @returns {Outgoing} */
  send(channelId, text, attachments = [], { replyTo, mentions = [] } = {}) {
    const body = text.trim();
    if (!body && attachments.length === 0) {
      throw new ChatError({ code: 'invalid_request', message: 'the message is empty' });
    }
    /** @type {Outgoing} */
    const outgoing = {
      clientMsgId: newClientMsgId(),
      channelId,
      text: body,
      attachments: attachments.map(({ key, fileName, contentType, size }) => ({ key, fileName, contentType, size })),
      state: 'queued',
      createdAt: Date.now(),
    };
    if (replyTo) outgoing.replyTo = quoteOf(replyTo);
    if (mentions.length > 0) outgoing.mentions = [...new Set(mentions)];
    const frameBytes = new TextEncoder().encode(JSON.stringify(this.#sendFrame(outgoing))).length;
    if (body.length > MAX_TEXT_CHARS || frameBytes > MAX_FRAME_BYTES) {
      throw new ChatError({
        code: 'too_large',
        message: `the message is too long (${frameBytes} bytes; at most ${MAX_FRAME_BYTES} per frame)`,
      });
    }
    this.outbox.set(outgoing.clientMsgId, outgoing);
    this.#emit('outbox', { channelId });
    this.#pump(channelId);
    return outgoing;
  }

  /** Replaces the text of one of our messages (answered with `messageUpdated`). */
  editMessage(channelId, messageId, text) {
    if (!text.trim()) throw new ChatError({ code: 'invalid_request', message: 'the new text is empty' });
    this.#sendAction({ action: 'editMessage', channelId, messageId, text: text.trim() });
  }

  /** Deletes a message: ours, or anyone's in a group we own or administer. */
  deleteMessage(channelId, messageId) {
    this.#sendAction({ action: 'deleteMessage', channelId, messageId });
  }

  /** Adds our reaction with `emoji` to a message, or takes it back (`added` false). The
   * answer, a `reaction` frame, updates the timeline. */
  react(channelId, messageId, emoji, added = true) {
    this.#sendAction({ action: added ? 'addReaction' : 'removeReaction', channelId, messageId, emoji });
  }

  /** Reacts with `emoji`, or takes our reaction with it back if we reacted with it.
   * @param {Message} message */
  toggleReaction(message, emoji) {
    const mine = (message.reactions ?? []).some((r) => r.emoji === emoji && r.me);
    this.react(message.channelId, message.messageId, emoji, !mine);
  }

  async mute(channelId, muted) {
    await this.api.mute(channelId, muted);
    const channel = this.channels.get(channelId);
    if (channel) channel.muted = muted;
    this.#emit('channels');
  }

  /** Uploads a file (a browser File or Blob with a name) for a message in `channelId`:
   * a grant from the HTTP API, then a multipart POST straight to S3 with the grant's fields
   * and the file last. Answers the attachment to pass to send().
   * @returns {Promise<Attachment>} */
  async upload(channelId, file) {
    const contentType = file.type || 'application/octet-stream';
    const grant = await this.api.uploadGrant(channelId, { fileName: file.name, contentType, size: file.size });
    const form = new FormData();
    for (const [name, value] of Object.entries(grant.fields)) form.append(name, value);
    form.append('file', file);
    let response;
    try {
      response = await fetch(grant.url, { method: 'POST', body: form });
    } catch (err) {
      throw new ChatError({ code: 'network', message: `the upload failed (${err.message})` });
    }
    if (!response.ok) {
      throw new ChatError({ code: 'upload_refused', message: `the storage refused the upload (HTTP ${response.status})` });
    }
    return { key: grant.key, fileName: file.name, contentType, size: file.size };
  }

  /** Sends a failed message again, with the same clientMsgId. */
  retry(clientMsgId) {
    const outgoing = this.outbox.get(clientMsgId);
    if (!outgoing) return;
    outgoing.state = 'queued';
    outgoing.error = undefined;
    this.#emit('outbox', { channelId: outgoing.channelId });
    this.#pump(outgoing.channelId);
  }

  discard(clientMsgId) {
    const outgoing = this.outbox.get(clientMsgId);
    if (!outgoing) return;
    this.outbox.delete(clientMsgId);
    this.#emit('outbox', { channelId: outgoing.channelId });
    this.#pump(outgoing.channelId);
  }

  /** @returns {Outgoing[]} */
  pending(channelId) {
    return [...this.outbox.values()].filter((o) => o.channelId === channelId);
  }

  /** Tells the server the user has read `channelId` up to its newest loaded message (the
   * answer and the other members get a `receipt`). Read positions only move forward. */
  markRead(channelId) {
    const channel = this.channels.get(channelId);
    const newest = this.timeline(channelId).messages().at(-1);
    if (!channel || !newest || newest.seq <= channel.lastReadSeq || this.state !== 'open') return;
    this.socket.send(JSON.stringify({ action: 'markRead', channelId, messageId: newest.messageId }));
    this.#readUpTo(channel, newest.seq);
  }

  /** Call on every keystroke in a channel's composer: sends `typing` start now and then,
   * and stop after a pause. */
  typing(channelId) {
    const mine = this.myTyping.get(channelId) ?? { sentAt: 0, idle: null };
    if (Date.now() - mine.sentAt > TYPING_RENEW_MS) {
      this.#sendTyping(channelId, 'start');
      mine.sentAt = Date.now();
    }
    clearTimeout(mine.idle);
    mine.idle = setTimeout(() => this.stopTyping(channelId), TYPING_IDLE_MS);
    this.myTyping.set(channelId, mine);
  }

  /** After sending, or when the composer is cleared. */
  stopTyping(channelId) {
    const mine = this.myTyping.get(channelId);
    if (!mine) return;
    clearTimeout(mine.idle);
    this.myTyping.delete(channelId);
    this.#sendTyping(channelId, 'stop');
  }

  /** Who is typing in a channel now (not us). */
  typingIn(channelId) {
    const now = Date.now();
    return [...(this.typists.get(channelId) ?? new Map())].filter(([, until]) => until > now).map(([user]) => user);
  }

  /** Members other than us who have read `seq` of a channel (from receipts seen). */
  readersOf(channelId, seq) {
    return [...(this.reads.get(channelId) ?? new Map())].filter(([, read]) => read >= seq).map(([user]) => user);
  }

  /** Asks once for the presence of users (answered by a `presenceState` frame; nothing
   * follows: use showPresence() for presence that stays up to date). Anyone we share no
   * channel with looks offline. */
  askPresence(userIds) {
    if (this.state !== 'open' || userIds.length === 0) return;
    for (let i = 0; i < userIds.length; i += PRESENCE_BATCH) {
      this.socket.send(JSON.stringify({ action: 'getPresence', userIds: userIds.slice(i, i + PRESENCE_BATCH) }));
    }
  }

  /** Asks for the presence of a channel's members (answered by a `presenceState` frame). */
  askChannelPresence(channelId) {
    if (this.state !== 'open') return;
    this.socket.send(JSON.stringify({ action: 'getPresence', channelId }));
  }

  /** The other people of our direct chats who accepted them (someone who has not yet
   * always looks offline): whose presence a channel list shows. */
  directPeers() {
    const peers = new Set();
    for (const c of this.channels.values()) if (c.kind === 'direct' && c.peer && c.memberCount >= 2) peers.add(c.peer);
    return [...peers];
  }

  /**
   * Tells whose presence the UI shows now: `userIds`, and the members of `channelIds`.
   * Those are subscribed to (`subscribePresence`: their presence now, then every change,
   * for as long as the connection lasts) and subscribed to again after every reconnect; whoever is
   * no longer shown is unsubscribed from and forgotten. Call it whenever that changes;
   * calling it again with the same people sends nothing.
   * @param {{userIds?: string[], channelIds?: string[]}} shown
   */
  showPresence({ userIds = [], channelIds = [] } = {}) {
    const users = new Set(userIds.filter((u) => u && u !== this.userId));
    const channels = new Set(channelIds.filter(Boolean));
    const gone = new Set([...this.shownUsers].filter((u) => !users.has(u)));
    for (const channelId of this.shownChannels) {
      if (channels.has(channelId)) continue;
      this.subscribedChannels.delete(channelId);
      for (const member of this.members.get(channelId) ?? []) gone.add(member.userId);
    }
    this.shownUsers = users;
    this.shownChannels = channels;
    for (const userId of gone) if (userId === this.userId || this.#shows(userId)) gone.delete(userId);
    if (gone.size > 0) {
      for (const userId of gone) {
        this.presence.delete(userId);
        this.subscribedUsers.delete(userId);
      }
      this.#sendBatches('unsubscribePresence', [...gone]);
    }
    this.#subscribeShown();
  }

  /** Whether the UI shows `userId`'s presence (by user, or as a member of a channel). */
  #shows(userId) {
    if (this.shownUsers.has(userId)) return true;
    for (const channelId of this.shownChannels) {
      if (this.members.get(channelId)?.some((m) => m.userId === userId)) return true;
    }
    return false;
  }

  /** Subscribes to whoever is shown and not subscribed to on this connection yet. */
  #subscribeShown() {
    if (this.state !== 'open') return;
    const users = [...this.shownUsers].filter((u) => !this.subscribedUsers.has(u));
    for (const userId of users) this.subscribedUsers.add(userId);
    this.#sendBatches('subscribePresence', users);
    for (const channelId of this.shownChannels) {
      if (!this.subscribedChannels.has(channelId)) this.#subscribeChannel(channelId);
    }
  }

  #subscribeChannel(channelId) {
    if (this.state !== 'open') return;
    this.subscribedChannels.add(channelId);
    this.socket.send(JSON.stringify({ action: 'subscribePresence', channelId }));
  }

  /** Every subscription is made again (after a refused `subscribePresence`). */
  #subscribeAgain() {
    this.subscribedUsers.clear();
    this.subscribedChannels.clear();
    this.#subscribeShown();
  }

  #sendBatches(action, userIds) {
    if (this.state !== 'open' || userIds.length === 0) return;
    for (let i = 0; i < userIds.length; i += PRESENCE_BATCH) {
      this.socket.send(JSON.stringify({ action, userIds: userIds.slice(i, i + PRESENCE_BATCH) }));
    }
  }

  /**
   * Chooses our state for all our devices (`online`: online or idle as they are used;
   * `dnd`: do not disturb, no pushes; `invisible`: looks offline to everyone else), and/or
   * who sees when we were last online. Answered with a `presence` frame about us as others
   * now see us (`me`). The server forgets the choice a while after our last connection:
   * it is sent again after every connect unless it is plain online (persist `chosen` on
   * the `me` event and hand it to restoreMine() on the next start).
   * @param {{state?: 'online'|'dnd'|'invisible', lastSeen?: 'contacts'|'nobody'}} choice
   */
  choosePresence({ state, lastSeen } = {}) {
    if (state !== undefined && !PRESENCE_STATES.includes(state)) {
      throw new ChatError({ code: 'invalid_request', message: `unknown state "${state}"` });
    }
    if (lastSeen !== undefined && lastSeen !== 'contacts' && lastSeen !== 'nobody') {
      throw new ChatError({ code: 'invalid_request', message: `lastSeen is "contacts" or "nobody"` });
    }
    this.chosen = { ...this.chosen, ...(state && { state }), ...(lastSeen && { lastSeen }) };
    this.#emit('me');
    if (this.state === 'open') this.#sendChosen();
    else this.chosenUnsent = true;
  }

  /**
   * Sets our custom status (`text`, `emoji`, both optional; `expiresAt`: ms since the
   * epoch), or clears it when it has neither. Checked here as the server checks it
   * (see statusFrame()); answered with a `presence` frame about us. Sent again after every
   * connect while it shows; it disappears by itself when it expires.
   * @param {CustomStatus} status
   */
  setCustomStatus({ text, emoji, expiresAt } = {}) {
    const frame = statusFrame({ text, emoji, expiresAt });
    this.customStatusBefore = this.customStatus;
    const said = frame.text || frame.emoji;
    this.#adoptStatus(said ? compact({ text: frame.text, emoji: frame.emoji, expiresAt: frame.expiresAt }) : null);
    if (this.state === 'open') this.#sendStatus();
    else this.statusUnsent = true;
  }

  /** What an earlier session of this user chose (as `chosen` and `customStatus` were, e.g.
   * from storage): sent once connected. Call before start(). An expired status is dropped.
   * @param {{chosen?: ChosenPresence, customStatus?: CustomStatus|null}} mine */
  restoreMine({ chosen, customStatus } = {}) {
    if (chosen && PRESENCE_STATES.includes(chosen.state)) {
      const lastSeen = chosen.lastSeen === 'nobody' || chosen.lastSeen === 'contacts' ? chosen.lastSeen : undefined;
      this.chosen = { state: chosen.state, ...(lastSeen && { lastSeen }) };
    }
    this.#adoptStatus(shownStatus(customStatus));
  }

  /** Our custom status here, until it expires. */
  #adoptStatus(status) {
    this.customStatus = status;
    this.#emit('me');
    const expiresAt = status?.expiresAt;
    if (expiresAt === undefined) return;
    this.#later(() => {
      if (this.customStatus !== status) return;
      this.customStatus = null;
      this.#emit('me');
    }, Math.max(0, expiresAt - Date.now()) + 50);
  }

  #sendChosen() {
    const { state, lastSeen } = this.chosen;
    this.socket.send(JSON.stringify({ action: 'setPresence', state, ...(lastSeen && { lastSeen }) }));
    this.chosenUnsent = false;
  }

  #sendStatus() {
    const status = shownStatus(this.customStatus);
    this.socket.send(JSON.stringify(statusFrame(status ?? {})));
    this.statusUnsent = false;
  }

  /** Call on every input of the user (keys, pointer, touch, focus): a device unused for
   * idleAfterMs turns idle (its heartbeats say so, the first at once); the next input ends
   * that with a heartbeat at once. */
  noteActivity() {
    this.lastActivity = Date.now();
    if (this.idle) {
      this.idle = false;
      this.#sendHeartbeat();
      this.#emit('me');
    }
    if (!this.idleTimer && this.running) this.#watchIdle(this.idleAfterMs);
  }

  #watchIdle(ms) {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (!this.running) return;
      const left = this.lastActivity + this.idleAfterMs - Date.now();
      if (left > 0) return this.#watchIdle(left);
      this.idle = true;
      this.#sendHeartbeat();
      this.#emit('me');
    }, ms);
  }

  #sendHeartbeat() {
    if (this.state !== 'open' || this.socket?.readyState !== WebSocket.OPEN) return;
    this.socket.send(JSON.stringify(this.idle ? { action: 'heartbeat', idle: true } : { action: 'heartbeat' }));
  }

  // ---------------------------------------------------------------- calls

  /** Rings the other person of a direct channel on all their devices: answered with
   * `callStarted` (or `callEnded`, outcome `busy`, when they are in another call). */
  startCall(channelId, media) {
    if (media !== 'audio' && media !== 'video') {
      throw new ChatError({ code: 'invalid_request', message: 'a call is "audio" or "video"' });
    }
    this.#sendAction({ action: 'startCall', channelId, media });
  }

  /** Takes a call that rings here (answered with `callAccepted`; the caller's device and
   * our other devices get it too). */
  acceptCall(callId) {
    this.#sendAction({ action: 'acceptCall', callId });
  }

  /** Turns down a call that rings here (everyone involved gets `callEnded`, `declined`). */
  declineCall(callId) {
    this.#sendAction({ action: 'declineCall', callId });
  }

  /** Hangs up, or (the caller, while it rings) cancels: everyone involved gets `callEnded`. */
  endCall(callId) {
    this.#sendAction({ action: 'endCall', callId });
  }

  /** Sends WebRTC signalling (an offer, an answer, a candidate) to the other device of an
   * active call, as is. */
  callSignal(callId, signal) {
    const bytes = new TextEncoder().encode(JSON.stringify(signal)).length;
    if (bytes > MAX_CALL_SIGNAL_BYTES) {
      throw new ChatError({ code: 'too_large', message: `call signalling of ${bytes} bytes (at most ${MAX_CALL_SIGNAL_BYTES})` });
    }
    this.#sendAction({ action: 'callSignal', callId, signal });
  }

  // ---------------------------------------------------------------- the WebSocket

  async #connect() {
    if (!this.running) return;
    this.#setState('connecting');
    let token;
    try {
      // Browsers cannot tell a refused handshake (401) from a network failure, so the token
      // is refreshed before it expires, and after two opens in a row that failed.
      if (this.failedOpens >= 2 || this.checkSession) await this.tokens.refreshNow();
      this.checkSession = false;
      token = await this.tokens.accessToken();
    } catch (err) {
      if (!this.tokens.session) return this.stop();
      this.#report(err);
      return this.#scheduleReconnect();
    }
    if (!this.running) return;
    const separator = this.webSocketUrl.includes('?') ? '&' : '?';
    const socket = new WebSocket(`${this.webSocketUrl}${separator}token=${encodeURIComponent(token)}`);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.failedOpens = 0;
      this.#later(() => {
        if (this.socket === socket) this.attempt = 0;
      }, STABLE_AFTER_MS);
      this.#setState('open');
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => {
        if (this.socket === socket) this.#sendHeartbeat();
      }, HEARTBEAT_MS);
      // Connecting counts as a heartbeat of a device in use; our choices may have been
      // forgotten by the server, or made while away.
      if (this.idle) this.#sendHeartbeat();
      if (this.chosenUnsent || this.chosen.state !== 'online' || this.chosen.lastSeen === 'nobody') this.#sendChosen();
      // (Not one about to expire: the server refuses an `expiresAt` in the past.)
      if (this.statusUnsent || shownStatus(this.customStatus, Date.now() + 2000)) {
        this.customStatusBefore = this.customStatus;
        this.#sendStatus();
      }
      // Subscriptions end with the connection: the shown users' are made again.
      this.subscribedUsers.clear();
      this.subscribedChannels.clear();
      this.presence.clear();
      this.#subscribeShown();
      this.#emit('presence', {});
      for (const outgoing of this.outbox.values()) if (outgoing.state === 'sent') outgoing.state = 'queued';
      for (const channelId of new Set([...this.outbox.values()].map((o) => o.channelId))) this.#pump(channelId);
      this.#resync();
    };
    socket.onmessage = (event) => this.#onFrame(event.data);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearInterval(this.heartbeat);
      if (!opened) this.failedOpens++;
      for (const outgoing of this.outbox.values()) if (outgoing.state === 'sent') outgoing.state = 'queued';
      // Signing out: the server ends our connections on purpose.
      if (this.signingOut) return this.#setState('closed');
      // A normal close from the server's side is how a session ended elsewhere shows.
      if (opened && event.code === 1000) this.checkSession = true;
      this.#scheduleReconnect();
    };
  }

  #scheduleReconnect() {
    if (!this.running) return;
    // Exponential backoff with jitter: a server that dropped everyone is not hit by everyone
    // at the same moment.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.attempt++;
    this.#setState('waiting', { retryInMs: delay });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  /** After (re)connecting: new channels, unread counts, and the missed messages of every
   * loaded channel in one `sync` (`messages` frames, then `synced`; a channel it could not
   * complete is read from history). */
  async #resync() {
    try {
      await this.refreshChannels();
      const cursors = {};
      const changes = {};
      for (const timeline of this.timelines.values()) {
        if (!timeline.loaded || !this.channels.has(timeline.channelId)) continue;
        if (timeline.contiguousId) {
          cursors[timeline.channelId] = timeline.contiguousId;
          // Edits and deletions made while away, of messages however old.
          if (timeline.changeCursor !== null) changes[timeline.channelId] = timeline.changeCursor;
        } else await this.#catchUp(timeline.channelId);
      }
      if (Object.keys(cursors).length > 0 && this.state === 'open') {
        this.socket.send(JSON.stringify({ action: 'sync', channels: cursors, changes }));
      }
    } catch (err) {
      this.#report(err);
    }
  }

  #onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return this.#report(new ChatError({ code: 'invalid_request', message: 'the server sent a frame that is not JSON' }));
    }
    switch (frame.type) {
      case 'ack':
        this.outbox.delete(frame.clientMsgId);
        this.#receive(frame.message);
        this.#emit('outbox', { channelId: frame.message.channelId });
        this.#pump(frame.message.channelId);
        break;
      case 'message':
        this.#receive(frame.message);
        this.#emit('message', { message: frame.message });
        break;
      case 'error':
        this.#onError(new ChatError(frame));
        break;
      case 'messages': {
        // Part of a `sync` answer: missed messages of one channel, oldest first.
        // Changed messages older than what is loaded wait for their page of history.
        // Messages come as they now are, reactions included; an older one that was deleted
        // or edited still shows in the quotes of the replies that are loaded.
        const timeline = this.timeline(frame.channelId);
        if (!timeline.loaded) break;
        const held = frame.messages.filter((m) => timeline.holds(m.seq));
        if (timeline.add(held, { complete: true }) + timeline.requote(frame.messages) > 0) {
          this.#settleOutbox(frame.messages);
          this.#emit('timeline', { channelId: frame.channelId });
        }
        break;
      }
      case 'synced':
        for (const done of frame.channels) {
          const timeline = this.timeline(done.channelId);
          if (done.upToChange !== undefined && timeline.loaded) {
            timeline.changeCursor = Math.max(timeline.changeCursor ?? 0, done.upToChange);
          }
          if (!done.complete) this.#catchUp(done.channelId).catch((err) => this.#report(err));
        }
        break;
      case 'messageUpdated':
        this.#onUpdate(frame.message);
        this.#advanceChanges(frame.message.channelId, frame.message.changeSeq);
        break;
      case 'messageDeleted':
        this.#onUpdate({ ...frame, deleted: true, text: '', attachments: [] });
        this.#advanceChanges(frame.channelId, frame.changeSeq);
        break;
      case 'reaction':
        this.#onReaction(frame);
        break;
      case 'receipt':
        this.#onReceipt(frame);
        break;
      case 'typing':
        this.#onTyping(frame);
        break;
      case 'presence':
        this.#setPresence(frame);
        break;
      case 'presenceState':
        for (const user of frame.users) this.#setPresence(user);
        break;
      case 'callStarted':
      case 'incomingCall':
      case 'callAccepted':
      case 'callEnded':
      case 'callSignal':
        // The WebRTC side (calls.js) acts on these; the call's entry in the conversation
        // comes as a `message` of its own when it ends.
        this.#emit('call', frame);
        break;
      default:
        // API Gateway's own answers carry no `type`: {"message": "Forbidden", ...}.
        if (!frame.type && frame.message) this.#report(new ChatError({ code: 'gateway', message: frame.message }));
      // Frame types this client does not know yet are ignored, as the protocol asks.
    }
  }

  /** @param {Message} message */
  #receive(message) {
    const timeline = this.timeline(message.channelId);
    const channel = this.channels.get(message.channelId);
    if (channel) {
      if (message.seq > channel.seq) {
        channel.seq = message.seq;
        channel.lastMessageId = message.messageId;
        // A new message (the list counted those before it) that mentions us.
        if (this.#mentionsMe(message)) channel.mentions = (channel.mentions ?? 0) + 1;
      }
      // Our own messages count as read.
      if (message.authorId === this.userId) this.#readUpTo(channel, message.seq);
      else channel.unread = Math.max(0, channel.seq - channel.lastReadSeq);
      // A message ends its author's typing.
      this.typists.get(message.channelId)?.delete(message.authorId);
      this.#emit('channels');
      this.#noticeAuthor(channel, message.authorId);
    } else {
      // A channel we just joined on another device.
      this.refreshChannels().catch((err) => this.#report(err));
    }
    if (!timeline.loaded) return;
    timeline.add([message]);
    this.#emit('timeline', { channelId: message.channelId });
    if (timeline.hasGap()) {
      // Live events can overtake each other: give the missing one a moment, then read it.
      this.#later(() => {
        if (timeline.hasGap()) this.#catchUp(message.channelId).catch((err) => this.#report(err));
      }, GAP_WAIT_MS);
    }
  }

  /** Reads everything after the last message up to which nothing is missing. */
  async #catchUp(channelId) {
    const timeline = this.timeline(channelId);
    const channel = this.channels.get(channelId);
    if (channel && channel.seq <= timeline.contiguousSeq && !timeline.hasGap()) return;
    if (!timeline.contiguousId) return this.#reload(channelId);
    const after = timeline.contiguousId;
    const missed = [];
    let before;
    do {
      const page = await this.api.history(channelId, { after, before, limit: 100 });
      missed.push(...page.messages);
      before = page.nextBefore;
      if (missed.length > MAX_CATCH_UP) return this.#reload(channelId);
    } while (before);
    if (timeline.add(missed, { complete: true }) > 0) {
      this.#settleOutbox(missed);
      this.#emit('timeline', { channelId });
    }
  }

  async #reload(channelId) {
    await this.#load(this.timeline(channelId));
    this.#emit('timeline', { channelId });
  }

  /** The newest page of a channel, as it is now: every change up to the channel list's
   * `changeSeq` (read before the page) is in it. */
  async #load(timeline) {
    const changeSeq = this.channels.get(timeline.channelId)?.changeSeq ?? 0;
    timeline.reset(await this.api.history(timeline.channelId, { limit: this.historyPage }));
    timeline.changeCursor = changeSeq;
  }

  /** A live change (edit, deletion, reaction) right after the change cursor moves it (one that overtook another, or
   * came while away, waits for the next sync). */
  #advanceChanges(channelId, changeSeq) {
    const timeline = this.timeline(channelId);
    if (timeline.loaded && timeline.changeCursor !== null && changeSeq === timeline.changeCursor + 1) {
      timeline.changeCursor = changeSeq;
    }
  }

  /** A send whose ack was lost shows up in history: it is delivered, not pending. */
  #settleOutbox(messages) {
    for (const m of messages) {
      if (m.authorId === this.userId && this.outbox.delete(m.clientMsgId)) {
        this.#emit('outbox', { channelId: m.channelId });
        this.#pump(m.channelId);
      }
    }
  }

  /** An edit or a deletion: applied by seq whenever it arrives (it can overtake the message;
   * then it stands in for it). */
  #onUpdate(update) {
    const timeline = this.timeline(update.channelId);
    const channel = this.channels.get(update.channelId);
    const known = timeline.bySeq.get(update.seq);
    if (update.deleted && channel && !known?.deleted && update.seq > channel.lastReadSeq && channel.unread > 0) {
      channel.unread--;
      if (known && this.#mentionsMe(known) && channel.mentions > 0) channel.mentions--;
      this.#emit('channels');
    }
    if (timeline.loaded && timeline.add([update]) > 0) this.#emit('timeline', { channelId: update.channelId });
  }

  /** A reaction, ours (the answer, or from another device of ours) or someone else's. */
  #onReaction(frame) {
    const timeline = this.timeline(frame.channelId);
    if (!timeline.loaded) return;
    const here = timeline.bySeq.get(frame.seq)?.messageId === frame.messageId;
    if (timeline.react(frame, this.userId)) this.#emit('timeline', { channelId: frame.channelId });
    // A reaction to a message that has not arrived yet waits for the next sync (the cursor
    // stays); one to a message older than what is loaded comes with its page of history.
    if (frame.changeSeq !== undefined && (here || !timeline.holds(frame.seq))) {
      this.#advanceChanges(frame.channelId, frame.changeSeq);
    }
  }

  /** @param {Message} message */
  #mentionsMe(message) {
    return message.authorId !== this.userId && Boolean(message.mentions?.includes(this.userId));
  }

  #sendAction(frame) {
    if (this.state !== 'open' || !this.socket) {
      throw new ChatError({ code: 'network', message: 'not connected; try again in a moment' });
    }
    this.socket.send(JSON.stringify(frame));
  }

  #readUpTo(channel, seq) {
    channel.lastReadSeq = Math.max(channel.lastReadSeq ?? 0, seq);
    channel.unread = Math.max(0, channel.seq - channel.lastReadSeq);
    // Which of the unread ones mention us is not known here: at most all that are left.
    channel.mentions = Math.min(channel.mentions ?? 0, channel.unread);
    this.#emit('channels');
  }

  /** A member read a channel up to `seq`: us on another device (our unread count follows),
   * or someone else (a read receipt for our messages). */
  #onReceipt({ channelId, userId, seq }) {
    const channel = this.channels.get(channelId);
    if (userId === this.userId) {
      if (channel) this.#readUpTo(channel, seq);
      return;
    }
    let reads = this.reads.get(channelId);
    if (!reads) this.reads.set(channelId, (reads = new Map()));
    reads.set(userId, Math.max(reads.get(userId) ?? 0, seq));
    this.#emit('receipts', { channelId });
  }

  #onTyping({ channelId, userId, state }) {
    let typists = this.typists.get(channelId);
    if (!typists) this.typists.set(channelId, (typists = new Map()));
    if (state === 'start') {
      typists.set(userId, Date.now() + TYPING_SHOWN_MS);
      this.#later(() => this.#emit('typing', { channelId }), TYPING_SHOWN_MS + 50);
    } else {
      typists.delete(userId);
    }
    this.#emit('typing', { channelId });
  }

  /** A user's presence (from a `presence` or `presenceState` frame); a custom status goes
   * when it expires. About us: how others now see us. */
  #setPresence({ userId, status, lastSeen, customStatus }) {
    const shown = shownStatus(customStatus);
    /** @type {Presence} */
    const presence = compact({ status, lastSeen, customStatus: shown ?? undefined });
    if (userId === this.userId) {
      this.me = presence;
      this.#emit('me');
    }
    this.presence.set(userId, presence);
    this.#emit('presence', { userId });
    if (shown?.expiresAt === undefined) return;
    this.#later(() => {
      if (this.presence.get(userId) !== presence) return;
      const { customStatus: _expired, ...rest } = presence;
      this.presence.set(userId, rest);
      if (userId === this.userId) this.me = rest;
      this.#emit('presence', { userId });
    }, Math.max(0, shown.expiresAt - Date.now()) + 50);
  }

  #sendTyping(channelId, state) {
    if (this.state === 'open') this.socket.send(JSON.stringify({ action: 'typing', channelId, state }));
  }

  /** @param {ChatError} error */
  #onError(error) {
    if (error.action === 'setStatus') {
      // Refused: ours is what it was before.
      this.#adoptStatus(shownStatus(this.customStatusBefore));
    } else if (error.action === 'subscribePresence' && error.code === 'rate_limited') {
      // Not subscribed: everyone shown is subscribed to again in a moment.
      this.#later(() => this.#subscribeAgain(), error.retryAfterMs ?? 2000);
    }
    const outgoing = error.clientMsgId ? this.outbox.get(error.clientMsgId) : undefined;
    if (outgoing) {
      outgoing.error = error;
      if (error.code === 'rate_limited' || error.code === 'internal') {
        // Retried with the same clientMsgId: the server stores it at most once.
        outgoing.state = 'waiting';
        const wait = error.retryAfterMs ?? 2000;
        this.#later(() => {
          if (this.outbox.get(outgoing.clientMsgId) === outgoing && outgoing.state === 'waiting') {
            outgoing.state = 'queued';
            this.#pump(outgoing.channelId);
          }
        }, wait);
      } else {
        outgoing.state = 'failed';
      }
      this.#emit('outbox', { channelId: outgoing.channelId });
      this.#pump(outgoing.channelId);
    }
    this.#report(error);
  }

  /** Sends the channel's oldest unanswered message, if none is in flight. One at a time per
   * channel: the backend may handle two frames of one connection concurrently (separate
   * Lambdas), so this is what keeps a sender's messages in the order they were written. */
  #pump(channelId) {
    if (this.state !== 'open' || !this.socket) return;
    const head = [...this.outbox.values()].find((o) => o.channelId === channelId && o.state !== 'failed');
    if (head?.state === 'queued') this.#transmit(head);
  }

  /** @param {Outgoing} outgoing */
  #transmit(outgoing) {
    this.socket.send(JSON.stringify(this.#sendFrame(outgoing)));
    outgoing.state = 'sent';
    this.#emit('outbox', { channelId: outgoing.channelId });
    const socket = this.socket;
    this.#later(() => {
      // No answer: the frame or its ack was lost. The same clientMsgId makes this safe.
      if (this.outbox.get(outgoing.clientMsgId) === outgoing && outgoing.state === 'sent' && this.socket === socket) {
        this.#transmit(outgoing);
      }
    }, ACK_TIMEOUT_MS);
  }

  /** @param {Outgoing} outgoing */
  #sendFrame(outgoing) {
    const frame = {
      action: 'sendMessage',
      channelId: outgoing.channelId,
      clientMsgId: outgoing.clientMsgId,
      text: outgoing.text,
    };
    if (outgoing.attachments.length > 0) frame.attachments = outgoing.attachments;
    if (outgoing.replyTo) frame.replyTo = outgoing.replyTo.messageId;
    if (outgoing.mentions) frame.mentions = outgoing.mentions;
    return frame;
  }

  // ---------------------------------------------------------------- plumbing

  /** Every INVITATION_POLL_MS while connected: the invitations, and the channel list too
   * while a direct chat we opened lately waits for the other person to accept. */
  #poll() {
    if (this.state !== 'open' || this.signingOut) return;
    const watched = [...this.invited].some(([channelId, { at }]) => {
      const channel = this.channels.get(channelId);
      return channel?.kind === 'direct' && channel.memberCount < 2 && Date.now() - at < WATCH_INVITED_MS;
    });
    const refresh = watched ? this.refreshChannels() : this.refreshInvitations();
    refresh.catch((err) => this.#background(err, 'invitations'));
  }

  /** Someone writes in a channel we did not know them to be a member of: they accepted an
   * invitation. The channel list (member counts) and, if read, the member list are read
   * again, once for a burst of such messages. */
  #noticeAuthor(channel, userId) {
    if (!userId || userId === this.userId) return;
    const members = this.members.get(channel.channelId);
    const joined =
      channel.kind === 'direct'
        ? channel.memberCount < 2
        : members
          ? !members.some((m) => m.userId === userId)
          : Boolean(this.invited.get(channel.channelId)?.users.has(userId));
    if (!joined || this.rereading.has(channel.channelId)) return;
    this.rereading.add(channel.channelId);
    this.#later(async () => {
      try {
        await this.refreshChannels();
        if (this.members.has(channel.channelId)) await this.loadMembers(channel.channelId);
        else this.invited.get(channel.channelId)?.users.delete(userId);
        this.#emit('channels');
      } catch (err) {
        this.#report(err);
      } finally {
        this.rereading.delete(channel.channelId);
      }
    }, GAP_WAIT_MS);
  }

  /** @param {ChannelView} view */
  #noteInvited(view) {
    if (!view.invited?.length) return;
    const known = this.invited.get(view.channelId)?.users ?? new Set();
    for (const user of view.invited) known.add(user);
    this.invited.set(view.channelId, { users: known, at: Date.now() });
  }

  /** @param {(invitation: Invitation) => boolean} gone */
  #dropInvitations(gone) {
    this.invitationChanges++;
    this.invitations = this.invitations.filter((i) => !gone(i));
    this.#emit('invitations');
  }

  /** An error of something the client does by itself (a poll): reported with `action`
   * set, so that a UI can tell it from the user's own actions. */
  #background(error, action) {
    const chatError =
      error instanceof ChatError ? error : new ChatError({ code: 'internal', message: String(error?.message ?? error) });
    chatError.action ??= action;
    this.#report(chatError);
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.#emit('status', { state, ...detail });
  }

  #later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  #report(error) {
    const chatError =
      error instanceof ChatError ? error : new ChatError({ code: 'internal', message: String(error?.message ?? error) });
    this.#emit('error', { error: chatError });
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

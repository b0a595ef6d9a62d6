// Voice and video calls in direct chats: the WebRTC side of the call frames a ChatClient
// (chat-protocol.js) sends and receives. A device does one thing at a time: it rings out,
// or it is in a call; calls to it ring meanwhile until answered, turned down or over.
// No DOM here either: app.js shows what a Calls knows (its `change` event) and hands the
// streams to its <video> elements.
//
// Who does what (docs of the wire: the `startCall` … `callSignal` frames): the caller's
// device offers once the call is accepted, the device that accepted answers, both trickle
// their ICE candidates as they find them, and a candidate that overtakes the description
// it belongs to waits for it.

import { ChatError } from './chat-protocol.js';

/**
 * @typedef {import('./chat-protocol.js').Call} Call
 * @typedef {import('./chat-protocol.js').CallEntry} CallEntry
 *
 * @typedef {object} Ringing       a call to us that rings on this device
 * @property {Call} call
 * @property {RTCIceServer[]} iceServers
 * @property {any} timer           stops the ringing at `call.ringUntil`
 * @property {boolean} accepting   Accept was clicked: the camera and microphone are coming
 *
 * @typedef {object} Outgoing      a call of ours that rings on the other side
 * @property {string} channelId
 * @property {'audio'|'video'} media
 * @property {Call|null} call      null until the server answered `startCall`
 * @property {RTCIceServer[]} iceServers
 * @property {MediaStream|null} local
 * @property {boolean} sent        `startCall` went out
 * @property {any} timer           ends the call unanswered at `call.ringUntil`
 *
 * @typedef {object} Active        the call this device is in
 * @property {Call} call
 * @property {'caller'|'callee'} role
 * @property {RTCPeerConnection} pc
 * @property {MediaStream|null} local
 * @property {MediaStream} remote
 * @property {RTCIceCandidateInit[]} candidates  received, waiting for the remote description
 * @property {Promise<void>} chain  the signalling steps, one after the other
 * @property {'connecting'|'connected'|'failed'} connection
 * @property {boolean} muted
 * @property {boolean} cameraOff
 * @property {number} since        when the call was answered (ms, for the timer)
 */

/** The text of a call entry: "Missed voice call", "Declined video call", "Voice call · 0:42".
 * @param {CallEntry} call */
export function callText(call) {
  const kind = call.media === 'video' ? 'video call' : 'voice call';
  const Kind = kind[0].toUpperCase() + kind.slice(1);
  switch (call.outcome) {
    case 'missed':
      return `Missed ${kind}`;
    case 'declined':
      return `Declined ${kind}`;
    case 'busy':
      return `${Kind} · busy`;
    case 'answered':
      return call.durationMs === undefined ? Kind : `${Kind} · ${formatDuration(call.durationMs)}`;
    default:
      return Kind;
  }
}

/** m:ss, or h:mm:ss from an hour on. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const seconds = String(total % 60).padStart(2, '0');
  const minutes = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

function constraints(media) {
  return { audio: true, video: media === 'video' };
}

function stopTracks(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** A refused or missing camera or microphone, in words. */
function mediaError(err, media) {
  const what = media === 'video' ? 'camera and microphone' : 'microphone';
  const why = err?.name === 'NotAllowedError' ? 'access was refused' : (err?.message ?? String(err));
  return new ChatError({ code: 'media', message: `cannot use the ${what}: ${why}` });
}

/**
 * The calls of one signed-in ChatClient on this device.
 *
 * Events: `change` (anything shown changed: ringing, ringing out, the call, its streams,
 * its connection), `notice` ({text}: news for the user, such as "Answered on another
 * device").
 */
export class Calls extends EventTarget {
  /** @param {import('./chat-protocol.js').ChatClient} client
   *  @param {{getUserMedia?: (c: MediaStreamConstraints) => Promise<MediaStream>}} [options] */
  constructor(client, { getUserMedia } = {}) {
    super();
    this.client = client;
    this.getUserMedia = getUserMedia ?? ((c) => navigator.mediaDevices.getUserMedia(c));
    /** @type {Map<string, Ringing>} by callId, oldest first */
    this.incoming = new Map();
    /** @type {Outgoing|null} */
    this.outgoing = null;
    /** @type {Active|null} */
    this.active = null;
    /** Channels whose call was cancelled before the server answered `startCall`: the
     * answer's call is ended at once. */
    this.abandoned = new Set();
    this.listeners = [
      ['call', (event) => this.#onFrame(event.detail)],
      ['error', (event) => this.#onError(event.detail.error)],
      ['status', (event) => this.#onStatus(event.detail.state)],
    ];
    for (const [type, listener] of this.listeners) client.addEventListener(type, listener);
  }

  /** Ringing out or in a call: no other call can start. */
  get busy() {
    return Boolean(this.outgoing || this.active);
  }

  /** The peer connection of the call, if any. */
  get pc() {
    return this.active?.pc ?? null;
  }

  /** The call to show as ringing (the oldest), if any. @returns {Ringing|null} */
  get ringing() {
    return this.incoming.values().next().value ?? null;
  }

  /** The other person of a call. @param {Call} call */
  peerOf(call) {
    return call.callerId === this.client.userId ? call.calleeId : call.callerId;
  }

  /** Calls the other person of a direct channel: the camera and microphone first (a
   * refusal rings nobody), then `startCall`. */
  async start(channelId, media) {
    if (this.busy) throw new ChatError({ code: 'conflict', message: 'you are in a call already' });
    /** @type {Outgoing} */
    const outgoing = { channelId, media, call: null, iceServers: [], local: null, sent: false, timer: null };
    this.outgoing = outgoing;
    this.#changed();
    let local;
    try {
      local = await this.getUserMedia(constraints(media));
    } catch (err) {
      if (this.outgoing === outgoing) this.#finish();
      throw mediaError(err, media);
    }
    // Cancelled while the browser asked for the devices.
    if (this.outgoing !== outgoing) return stopTracks(local);
    outgoing.local = local;
    try {
      this.client.startCall(channelId, media);
      outgoing.sent = true;
    } catch (err) {
      this.#finish();
      throw err;
    }
    this.#changed();
  }

  /** Answers a call that rings here: the camera and microphone first (the call keeps
   * ringing meanwhile), then the peer connection, then `acceptCall`. The caller's offer
   * comes after the server's `callAccepted`. Other calls ringing here are turned down. */
  async accept(callId) {
    const ringing = this.incoming.get(callId);
    if (!ringing || ringing.accepting || this.busy) return;
    ringing.accepting = true;
    this.#changed();
    const media = ringing.call.media;
    let local;
    try {
      local = await this.getUserMedia(constraints(media));
    } catch (err) {
      ringing.accepting = false;
      this.#changed();
      throw mediaError(err, media);
    }
    // It stopped ringing meanwhile: over, or answered on another device.
    if (this.incoming.get(callId) !== ringing || this.busy) return stopTracks(local);
    this.#stopRinging(callId);
    for (const other of [...this.incoming.keys()]) this.#send(() => this.decline(other));
    const active = this.#open(ringing.call, ringing.iceServers, 'callee', local);
    try {
      this.client.acceptCall(callId);
    } catch (err) {
      if (this.active === active) this.#finish();
      throw err;
    }
    this.#changed();
  }

  /** Turns down a call that rings here. */
  decline(callId) {
    if (!this.incoming.has(callId)) return;
    this.#stopRinging(callId);
    this.client.declineCall(callId);
  }

  /** Hangs up the call, or cancels the one ringing out. Everything here ends at once; the
   * server's `callEnded` confirms. */
  hangUp() {
    const callId = this.active?.call.callId ?? this.outgoing?.call?.callId;
    if (!callId && this.outgoing?.sent) this.abandoned.add(this.outgoing.channelId);
    this.#finish();
    if (callId) this.#send(() => this.client.endCall(callId));
  }

  setMuted(muted) {
    if (!this.active) return;
    this.active.muted = muted;
    for (const track of this.active.local?.getAudioTracks() ?? []) track.enabled = !muted;
    this.#changed();
  }

  setCameraOff(off) {
    if (!this.active) return;
    this.active.cameraOff = off;
    for (const track of this.active.local?.getVideoTracks() ?? []) track.enabled = !off;
    this.#changed();
  }

  /** Signed out: everything here ends without a word to the server (whose closed socket
   * ends the call for the other side). */
  close() {
    for (const [type, listener] of this.listeners) this.client.removeEventListener(type, listener);
    for (const callId of [...this.incoming.keys()]) this.#stopRinging(callId);
    this.#finish();
  }

  // ---------------------------------------------------------------- frames

  #onFrame(frame) {
    switch (frame.type) {
      case 'callStarted':
        return this.#onStarted(frame.call, frame.iceServers ?? []);
      case 'incomingCall':
        return this.#onIncoming(frame.call, frame.iceServers ?? []);
      case 'callAccepted':
        return this.#onAccepted(frame.call);
      case 'callEnded':
        return this.#onEnded(frame.call);
      case 'callSignal':
        return this.#onSignal(frame.callId, frame.signal);
    }
  }

  /** Our call rings on the other side, until `ringUntil`: then we end it (missed). */
  #onStarted(call, iceServers) {
    const outgoing = this.outgoing;
    if (!outgoing || outgoing.call || outgoing.channelId !== call.channelId) {
      if (this.abandoned.delete(call.channelId)) this.#send(() => this.client.endCall(call.callId));
      return;
    }
    outgoing.call = call;
    outgoing.iceServers = iceServers;
    outgoing.timer = setTimeout(() => {
      if (this.outgoing !== outgoing) return;
      this.#send(() => this.client.endCall(call.callId));
      this.#finish('No answer');
    }, Math.max(0, call.ringUntil - Date.now()));
    this.#changed();
  }

  /** A call to us: it rings here until `ringUntil` (server clock), then stops by itself. */
  #onIncoming(call, iceServers) {
    if (this.incoming.has(call.callId) || this.active?.call.callId === call.callId) return;
    const timer = setTimeout(() => this.#stopRinging(call.callId), Math.max(0, call.ringUntil - Date.now()));
    this.incoming.set(call.callId, { call, iceServers, timer, accepting: false });
    this.#changed();
  }

  /** Ours was accepted (the caller offers now), our own accept was answered, or another
   * device of ours took a call that rings here. */
  #onAccepted(call) {
    const outgoing = this.outgoing;
    if (outgoing?.call?.callId === call.callId) {
      clearTimeout(outgoing.timer);
      this.outgoing = null;
      const active = this.#open(call, outgoing.iceServers, 'caller', outgoing.local);
      this.#step(active, async () => {
        const offer = await active.pc.createOffer();
        await active.pc.setLocalDescription(offer);
        this.#signal(active, { type: 'offer', sdp: offer.sdp });
      });
      this.#changed();
    } else if (this.active?.call.callId === call.callId) {
      this.active.call = call;
      this.active.since = call.answeredAt ?? this.active.since;
      this.#changed();
    } else if (this.incoming.has(call.callId)) {
      this.#stopRinging(call.callId);
      this.#notice('Answered on another device');
    }
  }

  #onEnded(call) {
    if (this.incoming.has(call.callId)) this.#stopRinging(call.callId);
    const outgoing = this.outgoing;
    // A `startCall` can be answered with `callEnded` at once: the other person is busy.
    const ours =
      this.active?.call.callId === call.callId ||
      (outgoing &&
        (outgoing.call
          ? outgoing.call.callId === call.callId
          : call.outcome === 'busy' && outgoing.channelId === call.channelId));
    if (!ours) return;
    const peer = this.peerOf(call);
    const why =
      call.outcome === 'busy'
        ? `${peer} is in another call`
        : call.outcome === 'declined'
          ? `${peer} declined the call`
          : call.outcome === 'missed'
            ? 'No answer'
            : '';
    this.#finish(why);
  }

  #onSignal(callId, signal) {
    const active = this.active;
    if (!active || active.call.callId !== callId || !signal) return;
    this.#step(active, () => this.#apply(active, signal));
  }

  /** An offer (we accepted: we answer), an answer (we offered), or a candidate. */
  async #apply(active, signal) {
    const pc = active.pc;
    if (signal.type === 'offer' && active.role === 'callee') {
      await pc.setRemoteDescription({ type: 'offer', sdp: signal.sdp });
      await this.#addCandidates(active);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.#signal(active, { type: 'answer', sdp: answer.sdp });
    } else if (signal.type === 'answer' && active.role === 'caller') {
      await pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp });
      await this.#addCandidates(active);
    } else if (signal.type === 'candidate' && signal.candidate) {
      // The server may relay frames out of order: a candidate can come before the
      // description it belongs to, and waits for it.
      active.candidates.push(signal.candidate);
      if (pc.remoteDescription) await this.#addCandidates(active);
    }
  }

  async #addCandidates(active) {
    for (const candidate of active.candidates.splice(0)) {
      // One this browser cannot use is skipped: the others may still connect.
      await active.pc.addIceCandidate(candidate).catch((err) => console.warn('call: candidate', err));
    }
  }

  /** The server refused what we asked: a call that could not start, or a call that stopped
   * ringing before our accept (over, or answered on another device). */
  #onError(error) {
    if (error.action === 'startCall' && this.outgoing && !this.outgoing.call) this.#finish();
    if (error.action === 'acceptCall' && this.active?.role === 'callee') {
      if (!error.callId || error.callId === this.active.call.callId) this.#finish();
    }
  }

  /** The server ends the calls of a connection that closes: so does this device. */
  #onStatus(state) {
    if (state !== 'open' && this.busy) this.#finish('The call ended: the connection was lost');
  }

  // ---------------------------------------------------------------- WebRTC

  /** The peer connection of a call, with our tracks. @returns {Active} */
  #open(call, iceServers, role, local) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    /** @type {Active} */
    const active = {
      call,
      role,
      pc,
      local,
      remote: new MediaStream(),
      candidates: [],
      chain: Promise.resolve(),
      connection: 'connecting',
      muted: false,
      cameraOff: false,
      since: call.answeredAt ?? Date.now(),
    };
    for (const track of local?.getTracks() ?? []) pc.addTrack(track, local);
    pc.onicecandidate = ({ candidate }) => {
      // Trickle ICE: each candidate goes as soon as it is found (null: no more).
      if (candidate && this.active === active) this.#signal(active, { type: 'candidate', candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track }) => {
      if (this.active !== active) return;
      active.remote.addTrack(track);
      this.#changed();
    };
    pc.onconnectionstatechange = () => {
      if (this.active !== active) return;
      const state = pc.connectionState;
      // `disconnected` may come back by itself: it shows as connecting meanwhile.
      active.connection = state === 'connected' ? 'connected' : state === 'failed' ? 'failed' : 'connecting';
      this.#changed();
    };
    this.active = active;
    return active;
  }

  /** Runs a signalling step after the ones before it (descriptions and candidates must be
   * applied in order), while the call lasts. */
  #step(active, step) {
    active.chain = active.chain
      .then(() => (this.active === active ? step() : undefined))
      .catch((err) => {
        if (this.active !== active) return;
        console.warn('call: signalling failed', err);
        active.connection = 'failed';
        this.#changed();
      });
  }

  #signal(active, signal) {
    this.#send(() => this.client.callSignal(active.call.callId, signal));
  }

  /** A frame the user did not ask for directly: a failure is logged, not thrown. */
  #send(frame) {
    try {
      frame();
    } catch (err) {
      console.warn('call:', err);
    }
  }

  // ---------------------------------------------------------------- plumbing

  /** Ends what this device does: the ring out or the call (the peer connection closes, the
   * camera and microphone are let go). */
  #finish(text = '') {
    const { outgoing, active } = this;
    this.outgoing = null;
    this.active = null;
    if (outgoing) {
      clearTimeout(outgoing.timer);
      stopTracks(outgoing.local);
    }
    if (active) {
      active.pc.close();
      stopTracks(active.local);
    }
    if (text) this.#notice(text);
    this.#changed();
  }

  #stopRinging(callId) {
    const ringing = this.incoming.get(callId);
    if (!ringing) return;
    clearTimeout(ringing.timer);
    this.incoming.delete(callId);
    this.#changed();
  }

  #notice(text) {
    this.dispatchEvent(new CustomEvent('notice', { detail: { text } }));
  }

  #changed() {
    this.dispatchEvent(new CustomEvent('change'));
  }
}

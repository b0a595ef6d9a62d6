// Keeps the WebRTC of the call tests on 127.0.0.1: an init script (page.addInitScript, run
// before the app in every document of the page) that wraps RTCPeerConnection. Only ICE
// candidates with the address 127.0.0.1 reach the page (so only those are signalled), only
// those are accepted from the other side, and SDP loses every other `a=candidate` line.
// No STUN or TURN server is used. This is the tests' doing, not the product's.
//
// Chromium also needs --allow-loopback-in-peer-connection (it gathers no loopback
// candidates otherwise) and WebRtcHideLocalIpsWithMdns off (host candidates under made-up
// .local names would be announced over multicast DNS).

/** The init script. Runs in the page: it must not use anything from this module. */
export function loopbackOnly() {
  const LOOPBACK = '127.0.0.1';
  // "candidate:1 1 udp 2122260223 127.0.0.1 40001 typ host …": the address is the 5th field.
  const address = (candidate) => candidate.replace(/^a=/, '').split(' ')[4];
  // An empty candidate is the end of a generation: it carries no address.
  const allowed = (candidate) => !candidate || address(candidate) === LOOPBACK;
  const strip = (sdp) =>
    sdp
      .split('\r\n')
      .filter((line) => !line.startsWith('a=candidate:') || address(line) === LOOPBACK)
      .join('\r\n');
  const clean = (description) => (description?.sdp ? { type: description.type, sdp: strip(description.sdp) } : description);
  /** What the wrapper let through and held back, for the tests to look at. */
  const seen = { sent: [], dropped: [], refused: [] };
  window.__loopback = seen;

  const Native = window.RTCPeerConnection;
  class LoopbackPeerConnection extends Native {
    constructor(configuration = {}, ...rest) {
      super({ ...configuration, iceServers: [] }, ...rest);
      // Registered before any listener of the page (an `onicecandidate` too): a candidate
      // of another address reaches none of them.
      this.addEventListener('icecandidate', (event) => {
        const candidate = event.candidate?.candidate;
        if (allowed(candidate)) {
          if (candidate) seen.sent.push(candidate);
          return;
        }
        seen.dropped.push(candidate);
        event.stopImmediatePropagation();
      });
    }

    addIceCandidate(candidate, ...rest) {
      if (candidate && !allowed(candidate.candidate)) {
        seen.refused.push(candidate.candidate);
        return Promise.resolve();
      }
      return super.addIceCandidate(candidate, ...rest);
    }

    setLocalDescription(description, ...rest) {
      return description ? super.setLocalDescription(clean(description), ...rest) : super.setLocalDescription();
    }

    setRemoteDescription(description, ...rest) {
      return super.setRemoteDescription(clean(description), ...rest);
    }

    get localDescription() {
      return clean(super.localDescription);
    }
  }
  window.RTCPeerConnection = LoopbackPeerConnection;
}

/** The Chromium flags the call tests need: fake camera and microphone, no permission
 * prompt, loopback candidates, and raw addresses instead of mDNS names. */
export const CALL_BROWSER_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

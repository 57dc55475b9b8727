"use strict";
// The emojax page. "Listen": the microphone, brought to 16 kHz mono by capture-worklet.js, streamed to
// /ws/listen as float32 frames of 0.1 s; each window the server sends updates the current emotion and the chart
// of the last minute. "A recording": the file is posted to /api/timeline and its timeline shown.
// The page's state is in window.emojaxLive and window.emojaxFile.

const CHUNK_SAMPLES = 1600; // samples per WebSocket frame: 0.1 s at 16 kHz
const LIVE_SECONDS = 60; // the live chart's span
const PLOT_CONFIG = { responsive: true, displayModeBar: false };
const $ = (id) => document.getElementById(id);
let info; // GET /api/info: the model's classes ("emotions", any number) and their colours, window and hop, limits

function clock(seconds, hours) {
  // m:ss (h:mm:ss with hours), rounded down to the second, as `emojax timeline` prints them.
  const whole = Math.floor(seconds);
  const ss = String(whole % 60).padStart(2, "0");
  if (!hours) return `${Math.floor(whole / 60)}:${ss}`;
  return `${Math.floor(whole / 3600)}:${String(Math.floor(whole / 60) % 60).padStart(2, "0")}:${ss}`;
}

function megabytes(bytes) {
  return `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;
}

function setStatus(element, text, error = false) {
  element.textContent = text;
  element.classList.toggle("error", error);
}

function readableOn(hex) {
  // Black or white text, whichever reads better on the colour `hex`.
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  return 0.299 * r + 0.587 * g + 0.114 * b > 0.6 ? "#1d2330" : "#ffffff";
}

function chip(emotion) {
  const span = document.createElement("span");
  span.className = "chip";
  span.style.background = info.colours[emotion] || "#d9d9d9";
  return span;
}

// ---- Charts (plotly.js, served from the installed plotly package) ----

function probabilityTraces(windows, markers = false) {
  // One line per emotion at the windows' centres (x in ms from the start, for a date axis read as m:ss), with a
  // marker per window if `markers`; gaps at silence. A last, empty trace puts "silence" in the legend.
  const x = windows.map((w) => ((w.start_seconds + w.end_seconds) / 2) * 1000);
  const traces = info.emotions.map((emotion) => ({
    type: "scatter", mode: markers ? "lines+markers" : "lines", marker: { size: 6 }, name: emotion, x,
    y: windows.map((w) => (w.probabilities ? w.probabilities[emotion] : null)),
    line: { color: info.colours[emotion], width: 2.5 }, connectgaps: false,
    hovertemplate: `${emotion} %{y:.2f}<extra></extra>`,
  }));
  traces.push({ type: "scatter", mode: "markers", name: "silence", x: [null], y: [null], hoverinfo: "skip",
                marker: { symbol: "square", size: 14, color: "#d9d9d9" } });
  return traces;
}

function silenceShapes(spans) {
  // Grey bands over the [start, end] seconds of silence, merged where they touch.
  const merged = [];
  for (const [start, end] of spans) {
    const last = merged.at(-1);
    if (last && start <= last[1] + 1e-6) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged.map(([start, end]) => ({
    type: "rect", xref: "x", yref: "paper", x0: start * 1000, x1: end * 1000, y0: 0, y1: 1,
    fillcolor: "#d9d9d9", opacity: 0.5, line: { width: 0 }, layer: "below",
  }));
}

function chartLayout(range, hours, shapes, title) {
  const format = hours ? "%-H:%M:%S" : "%-M:%S";
  return {
    margin: { l: 56, r: 16, t: 12, b: 40 }, shapes, showlegend: true, hovermode: "x",
    xaxis: { type: "date", range, tickformat: format, hoverformat: format, title: { text: title, standoff: 6 },
             gridcolor: "#eceff3" },
    yaxis: { range: [0, 1], fixedrange: true, title: { text: "probability" }, gridcolor: "#eceff3", dtick: 0.25 },
    legend: { orientation: "h", y: -0.22, x: 0, font: { size: 13 } },
    font: { family: "system-ui, sans-serif", size: 13, color: "#1d2330" },
    plot_bgcolor: "white", paper_bgcolor: "rgba(0,0,0,0)",
  };
}

// ---- Listen ----

const live = {
  windows: [], // the window messages of the last LIVE_SECONDS (and a window more), for the chart
  shown: [], // {start_seconds, emotion} of every window shown since Listen
  latencies: [], // ms from the page receiving the chunk that completed a window to the chart showing it
  serverLatencies: [], // the windows' latency_ms: from the chunk's arrival at the server to the message
  listening: false,
};
window.emojaxLive = live;

function showCurrent(shown) {
  const emotion = $("current-emotion");
  const probability = $("current-probability");
  emotion.textContent = shown.emotion;
  emotion.className = "emotion";
  if (!shown.probabilities) {
    emotion.classList.add("silence");
    emotion.style.background = "none";
    emotion.style.color = "";
    probability.textContent = "no speech";
    return;
  }
  const colour = info.colours[shown.emotion];
  emotion.style.background = colour;
  emotion.style.color = readableOn(colour);
  probability.textContent = `${Math.round(shown.probabilities[shown.emotion] * 100)} %`;
}

function drawLive() {
  const now = live.windows.length ? live.windows.at(-1).end_seconds : 0;
  const start = Math.max(0, now - LIVE_SECONDS);
  const silent = live.windows.filter((w) => !w.probabilities).map((w) => {
    const centre = (w.start_seconds + w.end_seconds) / 2;
    return [centre - live.hop / 2, centre + live.hop / 2];
  });
  const layout = chartLayout([start * 1000, Math.max(now, LIVE_SECONDS) * 1000], false, silenceShapes(silent),
                             "time since Listen (m:ss)");
  return Plotly.react("live-chart", probabilityTraces(live.windows), layout, PLOT_CONFIG);
}

async function onWindow(message) {
  live.windows.push(message);
  live.shown.push({ start_seconds: message.start_seconds, emotion: message.emotion });
  live.serverLatencies.push(message.latency_ms);
  const keepFrom = message.end_seconds - LIVE_SECONDS - live.window;
  while (live.windows.length && live.windows[0].start_seconds < keepFrom) live.windows.shift();
  showCurrent(message);
  const captured = live.captureTimes.get(message.received_samples);
  await drawLive();
  await new Promise((resolve) => requestAnimationFrame(resolve));
  if (captured !== undefined) live.latencies.push(performance.now() - captured);
  for (const samples of live.captureTimes.keys()) {
    if (samples >= message.received_samples) break;
    live.captureTimes.delete(samples);
  }
  const silent = message.probabilities ? "" : " (silence)";
  setStatus($("listen-status"), `Listening: ${clock(message.end_seconds)}; the last window${silent} was shown ` +
            `${Math.round(live.latencies.at(-1) ?? 0)} ms after its audio.`);
}

function openSocket() {
  // The WebSocket, once the server said "ready".
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/listen?format=f32`);
  socket.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        live.hop = message.hop_seconds;
        live.window = message.window_seconds;
        socket.onmessage = onMessage;
        resolve(socket);
      } else if (message.type === "error") reject(new Error(message.message));
    };
    socket.onclose = () => reject(new Error("the server closed the connection"));
    socket.onerror = () => reject(new Error("cannot reach the server"));
  });
}

function onMessage(event) {
  const message = JSON.parse(event.data);
  if (message.type === "window") live.drawn = (live.drawn || Promise.resolve()).then(() => onWindow(message));
  else if (message.type === "error") setStatus($("listen-status"), `The server says: ${message.message}`, true);
  else if (message.type === "end") live.ended?.();
}

async function startListening() {
  const button = $("listen");
  button.disabled = true;
  const status = $("listen-status");
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus(status, "This browser gives no microphone to this page: open it as http://localhost:PORT or over " +
              "HTTPS.", true);
    button.disabled = false;
    return;
  }
  setStatus(status, "Asking for the microphone…");
  try {
    live.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    live.context = new AudioContext();
    await live.context.audioWorklet.addModule("/static/capture-worklet.js");
    live.node = new AudioWorkletNode(live.context, "emojax-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { targetRate: info.sample_rate, chunkSamples: CHUNK_SAMPLES },
    });
    const mute = live.context.createGain(); // keeps the worklet pulled by the graph, silently
    mute.gain.value = 0;
    live.node.connect(mute).connect(live.context.destination);
    live.socket = await openSocket();
  } catch (error) {
    setStatus(status, `Cannot listen: ${error.message}`, true);
    cleanUp();
    return;
  }
  Object.assign(live, { windows: [], shown: [], latencies: [], serverLatencies: [], captured: 0,
                        captureTimes: new Map(), listening: true, drawn: Promise.resolve() });
  live.socket.onclose = () => {
    if (live.listening) {
      setStatus(status, "The server closed the connection; press Listen to start again.", true);
      cleanUp();
    }
  };
  live.node.port.onmessage = (event) => {
    if (event.data === "flushed") return live.flushed?.();
    live.captured += event.data.length;
    live.captureTimes.set(live.captured, performance.now());
    if (live.socket.readyState === WebSocket.OPEN) live.socket.send(event.data.buffer);
  };
  live.source = live.context.createMediaStreamSource(live.media);
  live.source.connect(live.node);
  await live.context.resume();
  $("current-emotion").textContent = "…";
  setStatus(status, `Listening: the first window comes after ${live.window.toFixed(1)} s.`);
  button.textContent = "Stop";
  button.classList.add("stop");
  button.disabled = false;
  drawLive();
}

function within(ms, setResolver) {
  // A promise that resolves when `setResolver`'s callback is called, or after `ms`.
  return new Promise((resolve) => {
    setResolver(resolve);
    setTimeout(resolve, ms);
  });
}

async function stopListening() {
  const button = $("listen");
  button.disabled = true;
  live.listening = false;
  live.source.disconnect();
  await within(1000, (done) => { live.flushed = done; live.node.port.postMessage("flush"); });
  if (live.socket.readyState === WebSocket.OPEN) {
    const ended = within(5000, (done) => { live.ended = done; });
    live.socket.send(JSON.stringify({ type: "stop" }));
    await ended;
    await live.drawn;
  }
  const last = live.shown.at(-1);
  setStatus($("listen-status"), `Stopped after ${clock(live.captured / info.sample_rate)}: ` +
            `${live.shown.length} windows${last ? `, the last ${last.emotion}` : ""}.`);
  cleanUp();
}

function cleanUp() {
  live.listening = false;
  live.socket?.close();
  live.media?.getTracks().forEach((track) => track.stop());
  live.context?.close();
  Object.assign(live, { socket: null, media: null, context: null, source: null, node: null });
  const button = $("listen");
  button.textContent = "Listen";
  button.classList.remove("stop");
  button.disabled = false;
}

// ---- A recording ----

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function showTimeline(result) {
  const timeline = result.timeline;
  const hours = timeline.duration_seconds >= 3600;
  const stem = timeline.file.replace(/\.[^.]*$/, "") || "recording";
  $("file-title").textContent = timeline.file;
  const smoothing = timeline.smooth_seconds ? `, smoothed over ${timeline.smooth_seconds} s` : "";
  $("file-summary").textContent = `${clock(timeline.duration_seconds, hours)} (${timeline.duration_seconds.toFixed(1)} s), ` +
    `${timeline.windows.length} windows of ${timeline.window_seconds.toFixed(2)} s every ` +
    `${timeline.hop_seconds.toFixed(2)} s${smoothing}. ${result.message || ""}`;
  $("download-csv").onclick = () => download(`${stem}.csv`, result.csv, "text/csv");
  $("download-json").onclick = () => download(`${stem}.json`, JSON.stringify(timeline, null, 1), "application/json");
  const rows = timeline.segments.map((s) => {
    const row = document.createElement("tr");
    const cells = [clock(s.start_seconds, hours), clock(s.end_seconds, hours), s.emotion,
                   s.probability === null ? "–" : s.probability.toFixed(2)].map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    });
    cells[2].prepend(chip(s.emotion));
    if (s.probability === null) cells[2].className = "silence";
    cells[3].className = "number";
    row.append(...cells);
    return row;
  });
  $("segments").tBodies[0].replaceChildren(...rows);
  $("file-result").hidden = false;
  const silent = timeline.segments.filter((s) => s.probability === null).map((s) => [s.start_seconds, s.end_seconds]);
  const layout = chartLayout([0, timeline.duration_seconds * 1000], hours, silenceShapes(silent),
                             hours ? "time (h:mm:ss)" : "time (m:ss)");
  return Plotly.react("file-chart", probabilityTraces(timeline.windows, timeline.windows.length <= 100), layout,
                      PLOT_CONFIG);
}

async function analyse(file) {
  const status = $("file-status");
  window.emojaxFile = { name: file.name, done: false };
  $("file-result").hidden = true;
  if (file.size > info.max_upload_bytes) {
    setStatus(status, `${file.name} is ${megabytes(file.size)}; this server takes files up to ` +
              `${megabytes(info.max_upload_bytes)} (emojax serve --max-upload-mb).`, true);
    window.emojaxFile.done = true;
    return;
  }
  setStatus(status, `Analysing ${file.name} (${megabytes(file.size)})…`);
  try {
    const response = await fetch(`/api/timeline?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
    const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!response.ok) {
      setStatus(status, body.error, true);
    } else {
      setStatus(status, "");
      await showTimeline(body);
      window.emojaxFile.result = body;
    }
  } catch (error) {
    setStatus(status, `Cannot reach the server (${error.message}); is emojax serve still running?`, true);
  }
  window.emojaxFile.done = true;
}

// ---- The page ----

function showView(name) {
  for (const view of ["listen", "file"]) {
    $(`tab-${view}`).setAttribute("aria-selected", String(view === name));
    $(`${view}-view`).hidden = view !== name;
  }
  const chart = $(name === "listen" ? "live-chart" : "file-chart");
  if (chart.data) Plotly.Plots.resize(chart);
}

async function init() {
  info = await (await fetch("/api/info")).json();
  $("tab-listen").onclick = () => showView("listen");
  $("tab-file").onclick = () => showView("file");
  $("listen").onclick = () => (live.listening ? stopListening() : startListening());
  $("live-note").textContent = `Windows of ${info.window_seconds.toFixed(1)} s every ${info.hop_seconds} s; ` +
    "grey: no speech. The audio is sent only to this server.";
  $("limits").textContent = `WAV, FLAC, OGG, MP3, AIFF…, up to ${megabytes(info.max_upload_bytes)} and ` +
    `${Math.round(info.max_seconds / 60)} min.`;
  const drop = $("drop");
  const input = $("file-input");
  input.onchange = () => {
    if (input.files.length) analyse(input.files[0]);
    input.value = ""; // choosing the same file again analyses it again
  };
  drop.ondragover = (event) => { event.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) analyse(event.dataTransfer.files[0]);
  };
  for (const [id, span] of [["live-chart", "the last minute"], ["file-chart", "the recording"]]) {
    $(id).setAttribute("aria-label", `probabilities of the ${info.emotions.length} emotions over ${span}`);
  }
  // The charts are taller for a model of more classes than the 8 emotions, so that their legend leaves room.
  document.body.style.setProperty("--more-classes", Math.max(0, info.emotions.length - 8));
  live.hop = info.hop_seconds;
  live.window = info.window_seconds;
  drawLive();
}

init();

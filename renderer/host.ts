/**
 * The renderer's one view of its host. Two transports fit behind it: the web server's WebSocket
 * (web mode) and an Electron preload bridge exposing the same channel map (`window.ipaStudio`).
 */
import type { RunEvent } from '../engine/api.js';
import { inputsImageUrl } from '../engine/image-refs.js';
import { RunEventSchema, type ChannelName, type ChannelRequest, type ChannelResponse } from '../engine/protocol.js';

export interface OpenedFile {
  name: string;
  bytes: Uint8Array;
  /** The images a workflow names relative to its file, read from beside it (the desktop host: it knows the file's folder). */
  images?: { ref: string; bytes: Uint8Array }[];
}

export interface Host {
  readonly kind: 'web' | 'electron';
  call<K extends ChannelName>(method: K, params: ChannelRequest<K>): Promise<ChannelResponse<K>>;
  onEvent(listener: (e: RunEvent) => void): () => void;
  /** Connection state changes (web: socket up/down; Electron: always up). */
  onConnection(listener: (up: boolean) => void): () => void;
  /** A native Open dialog; null where the host has none (the renderer uses a file input). */
  openFile?(kind: 'workflow' | 'image'): Promise<OpenedFile | null>;
  /** Saves bytes where the user chooses (native dialog) or downloads them (browser). Returns the name used, or null when cancelled. */
  saveFile(suggestedName: string, bytes: Uint8Array, mime: string, opts: { saveAs: boolean; folder?: boolean }): Promise<string | null>;
  /** A native folder dialog for a Settings field (starting at `current`); null where the host has none (a browser: type the path). */
  pickFolder?(purpose: FolderPurpose, current?: string): Promise<string | null>;
  /** A URL for an image param value (an uploaded input), or null. */
  imageUrl(value: string): string | null;
  /** Electron: actions chosen in the application menu (names of renderer/actions.ts ACTIONS). */
  onMenuAction?(listener: (action: string) => void): () => void;
}

/** What an Electron preload exposes through contextBridge (same channel names and bodies). */
export interface BridgeApi {
  invoke(method: string, params: unknown): Promise<{ ok: true; result: unknown } | { ok: false; error: string }>;
  onEvent(listener: (e: unknown) => void): () => void;
  openFile(kind: 'workflow' | 'image'): Promise<OpenedFile | null>;
  saveFile(suggestedName: string, bytes: Uint8Array, mime: string, opts: { saveAs: boolean; folder?: boolean }): Promise<string | null>;
  pickFolder(purpose: FolderPurpose, current?: string): Promise<string | null>;
  imageUrl(value: string): string | null;
  onMenuAction(listener: (action: string) => void): () => void;
}

/** Which Settings folder a picker is for (electron/channels.ts FOLDER_PURPOSES). */
export type FolderPurpose = 'models' | 'output';

declare global {
  interface Window {
    ipaStudio?: BridgeApi;
  }
}

/** Browser download of bytes under a file name. */
export function download(name: string, bytes: Uint8Array, mime: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: mime }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Web mode: JSON requests over a WebSocket to the engine server, reconnecting when it drops. */
export class WebSocketHost implements Host {
  readonly kind = 'web' as const;
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private outbox: string[] = [];
  private listeners = new Set<(e: RunEvent) => void>();
  private connListeners = new Set<(up: boolean) => void>();
  private retry = 250;

  constructor(private readonly url: string) {
    this.connect();
  }

  private connect(): void {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 250;
      for (const m of this.outbox.splice(0)) ws.send(m);
      for (const l of this.connListeners) l(true);
    };
    ws.onmessage = (msg) => this.receive(String(msg.data));
    ws.onclose = () => {
      for (const [, p] of this.pending) p.reject(new Error('connection to the engine closed'));
      this.pending.clear();
      for (const l of this.connListeners) l(false);
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 5000);
    };
  }

  private receive(text: string): void {
    let msg: { kind?: string; id?: number | null; ok?: boolean; result?: unknown; error?: string; event?: unknown };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.kind === 'event') {
      const ev = RunEventSchema.safeParse(msg.event);
      if (ev.success) for (const l of this.listeners) l(ev.data as RunEvent);
      return;
    }
    if (msg.kind !== 'reply') return;
    if (msg.id == null) {
      console.warn('engine error:', msg.error);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(msg.error ?? 'request failed'));
  }

  call<K extends ChannelName>(method: K, params: ChannelRequest<K>): Promise<ChannelResponse<K>> {
    const id = this.nextId++;
    const text = JSON.stringify({ id, method, params });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
      else this.outbox.push(text);
    });
  }

  onEvent(listener: (e: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onConnection(listener: (up: boolean) => void): () => void {
    this.connListeners.add(listener);
    if (this.ws?.readyState === WebSocket.OPEN) queueMicrotask(() => listener(true));
    return () => this.connListeners.delete(listener);
  }

  async saveFile(name: string, bytes: Uint8Array, mime: string): Promise<string | null> {
    download(name, bytes, mime);
    return name;
  }

  imageUrl(value: string): string | null {
    // Uploads live in the server's inputs folder (`inputs/<file>`), served (and confined) under /inputs/.
    return inputsImageUrl(value);
  }
}

/** Electron: the preload bridge. */
export class BridgeHost implements Host {
  readonly kind = 'electron' as const;
  constructor(private readonly bridge: BridgeApi) {}
  async call<K extends ChannelName>(method: K, params: ChannelRequest<K>): Promise<ChannelResponse<K>> {
    const r = await this.bridge.invoke(method, params);
    if (!r.ok) throw new Error(r.error);
    return r.result as ChannelResponse<K>;
  }
  onEvent(listener: (e: RunEvent) => void): () => void {
    return this.bridge.onEvent((e) => {
      const ev = RunEventSchema.safeParse(e);
      if (ev.success) listener(ev.data as RunEvent);
    });
  }
  onConnection(listener: (up: boolean) => void): () => void {
    listener(true);
    return () => {};
  }
  openFile(kind: 'workflow' | 'image') {
    return this.bridge.openFile(kind);
  }
  saveFile(name: string, bytes: Uint8Array, mime: string, opts: { saveAs: boolean; folder?: boolean }) {
    return this.bridge.saveFile(name, bytes, mime, opts);
  }
  pickFolder(purpose: FolderPurpose, current?: string) {
    return this.bridge.pickFolder(purpose, current);
  }
  imageUrl(value: string) {
    return this.bridge.imageUrl(value);
  }
  onMenuAction(listener: (action: string) => void) {
    return this.bridge.onMenuAction(listener);
  }
}

export function createHost(): Host {
  if (window.ipaStudio) return new BridgeHost(window.ipaStudio);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return new WebSocketHost(`${proto}//${location.host}/ws`);
}

/** Where the SDK keeps its device id, offline queue and read positions. localStorage (web),
 * AsyncStorage (React Native) and anything with the same three methods fit as they are. */
export interface Storage {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

/** Kept in memory only: lost when the process ends. */
export function memoryStorage(): Storage {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** The page's localStorage when there is one (browsers), else memory. Feature-detected: no DOM
 * types are referenced, so the package also builds and runs where there is none. */
export function defaultStorage(): Storage {
  try {
    const candidate = (globalThis as { localStorage?: Storage }).localStorage;
    if (candidate && typeof candidate.getItem === "function") {
      const probe = "replyhq:probe";
      candidate.setItem(probe, "1");
      candidate.removeItem(probe);
      return candidate;
    }
  } catch {
    // Blocked (private mode, sandboxed frame): fall back to memory.
  }
  return memoryStorage();
}

export async function loadJson<T>(storage: Storage, key: string): Promise<T | null> {
  try {
    const raw = await storage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export async function saveJson(storage: Storage, key: string, value: unknown): Promise<void> {
  try {
    if (value === null || value === undefined) await storage.removeItem(key);
    else await storage.setItem(key, JSON.stringify(value));
  } catch {
    // Full or blocked: the SDK keeps working from memory for this run.
  }
}

// The only host facilities the SDK touches, declared narrowly on purpose: the package compiles
// without the DOM and Node type libraries, so any other browser or Node API fails the build
// (React Native has neither). Each is feature-detected on globalThis or passed in.
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;

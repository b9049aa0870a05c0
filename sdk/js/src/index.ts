export { NEW_CONVERSATION, ReplyHQ } from "./client";
export type { ClientEvents, Feature, OutgoingMessage, ReplyHQOptions } from "./client";
export { ReplyHQError } from "./errors";
export { defaultStorage, memoryStorage } from "./storage";
export type { Storage } from "./storage";
export type * from "./types";

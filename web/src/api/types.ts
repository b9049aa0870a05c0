// Names for the server's types, all taken from the generated OpenAPI schema (never copied by hand).
import type { components } from "./schema";

type Schemas = components["schemas"];

export type Message = Schemas["MessageOut"];
export type Conversation = Schemas["ConversationOut"];
export type InboxConversation = Schemas["InboxConversation"];
export type ConversationUser = Schemas["ConversationUser"];
export type EndUser = Schemas["EndUserOut"];
export type Staff = Schemas["StaffOut"];
export type Assignee = Schemas["Assignee"];
export type MessageHit = Schemas["MessageHit"];
export type SearchUser = Schemas["SearchUser"];
export type Me = Schemas["MeOut"];
export type Invite = Schemas["InviteOut"];
export type InviteCreated = Schemas["InviteCreated"];
export type AppSettings = Schemas["AppOut"];
export type AppWithKeys = Schemas["AppWithKeys"];
export type TokenPair = Schemas["TokenPairOut"];
export type Role = Staff["role"];
export type IdentifyIn = Schemas["IdentifyIn"];
export type Billing = Schemas["BillingOut"];
// Two models are named PreviewOut (billing, segments): the schema names each by its module.
export type BillingPreview = Schemas["replyhq__billing__schemas__PreviewOut"];
export type PlanKey = Schemas["CheckoutIn"]["plan"];

/** `conversation:updated` carries what every reader shares: no per-reader unread count, no
 * last message, no user (see messaging.service.conversation_event). */
export type ConversationEvent = Pick<
  InboxConversation,
  "id" | "end_user_id" | "subject" | "status" | "assignee_id" | "last_seq" | "last_activity_at" | "created_at"
>;

/** Who did something, as Socket.IO events name them. */
export interface Who {
  type: "user" | "agent" | "system";
  id: string;
  name?: string | null;
}

export interface ServerEvents {
  "message:new": (data: { message: Message }) => void;
  "conversation:updated": (data: { conversation: ConversationEvent }) => void;
  typing: (data: { conversation_id: string; who: Who; typing: boolean }) => void;
  read: (data: { conversation_id: string; who: Who; seq: number }) => void;
  presence: (data: { user_id?: string; agent_id?: string; online: boolean }) => void;
  // The server may have missed events (its Redis subscription came back): sync every conversation.
  resync: (data: Record<string, never>) => void;
  // The agents' workspace (docs/workspace.md): /admin only.
  "timeline:item": (data: { item: TimelineItem }) => void;
  "note:mention": (data: { staff_id: string; conversation_id: string; note: TimelineItem }) => void;
  "conversation:labels": (data: { conversation_id: string; labels: Label[] }) => void;
  "agent:availability": (data: { staff_id: string; available: boolean }) => void;
  // Onboarding: a checklist step happened for the first time; the test console's traffic.
  "onboarding:step": (data: OnboardingStep) => void;
  "console:entries": (data: { entries: ConsoleEntry[] }) => void;
}

export type Ack<T extends object = object> =
  | ({ ok: true } & T)
  | { ok: false; code: string; error: string };

export interface ClientEvents {
  "message:send": (
    data: { conversation_id: string; body: string; client_msg_id: string },
    ack: (a: Ack<{ message: Message; created: boolean }>) => void,
  ) => void;
  typing: (data: { conversation_id: string; typing: boolean }, ack: (a: Ack) => void) => void;
  read: (data: { conversation_id: string; seq: number }, ack: (a: Ack<{ seq: number }>) => void) => void;
  sync: (
    data: { conversation_id: string; after_seq: number; limit?: number },
    ack: (a: Ack<{ messages: Message[]; has_more: boolean }>) => void,
  ) => void;
  "console:subscribe": (data: Record<string, never>, ack: (a: Ack) => void) => void;
  "console:unsubscribe": (data: Record<string, never>, ack: (a: Ack) => void) => void;
}

export type Onboarding = components["schemas"]["OnboardingOut"];
export type OnboardingStep = components["schemas"]["StepOut"];
export type Quickstart = components["schemas"]["QuickstartOut"];
export type SignupResult = components["schemas"]["SignupOut"];

export interface ConsoleEntry {
  id: string;
  at: string;
  type: "connect" | "connect_refused" | "disconnect" | "identify" | "message" | "typing" | "event" | "refused";
  device_id: string | null;
  user_id: string | null;
  data: Record<string, unknown>;
}
export type PushLogItem = Schemas["NotificationOut"];
export type NotificationPrefs = Schemas["AgentPrefs"];
export type TimelineItem = Schemas["TimelineItemOut"];
export type Label = Schemas["LabelOut"];
export type SavedReply = Schemas["SavedReplyOut"];

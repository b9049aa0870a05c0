// The messenger's catalogue: every word it shows, per language. The app's `language` setting
// (GET /v1/messenger) picks one; `satisfies` makes a missing key in any language a type error.
// The server's own words (the away reply) are in src/replyhq/messenger/i18n.py.
import type { Blocked } from "./blocked";

export type Language = "en" | "fr";
export const LANGUAGES: Language[] = ["en", "fr"];

const en = {
  connecting: "Connecting…",
  online: "Online",
  reconnecting: "Reconnecting…",
  offline: "Offline: messages will be sent when you are back online",
  supportChat: "Support chat",
  openChat: "Open support chat",
  closeChat: "Close support chat",
  close: "Close",
  allConversations: "All conversations",
  newConversation: "New conversation",
  closedTag: "Closed",
  earlier: "Earlier messages",
  closed: "This conversation was closed.",
  writeToReopen: "Write below to reopen it.",
  isTyping: "{name} is typing…",
  placeholder: "Write a message…",
  placeholderClosed: "Write to reopen this conversation…",
  message: "Message",
  send: "Send",
  attach: "Send a file or image",
  seen: "Seen",
  sending: "Sending…",
  notSentYet: "Not sent yet: it will be sent when support can be reached",
  notSent: "Not sent",
  retry: "Retry",
  delete: "Delete",
  support: "Support",
  away: "We're away",
  backAt: "Back {when}",
  replies_minutes: "Usually replies in a few minutes",
  replies_hour: "Usually replies within an hour",
  replies_hours: "Usually replies within a few hours",
  replies_day: "Usually replies within a day",
  rateTitle: "How was this conversation?",
  rateStar: "{n} out of 5",
  rateComment: "Anything to add? (optional)",
  rateSend: "Send rating",
  rateThanks: "Thanks for your feedback!",
  blocked_identity_title: "Sign in to chat with support",
  blocked_identity_detail: "Sign in to your account on this site, then open this chat again.",
  blocked_origin_title: "Support chat is not available on this site",
  blocked_origin_detail: "Please contact us another way for now.",
  blocked_unavailable_title: "Support chat is not available right now",
  blocked_unavailable_detail: "Please try again later.",
};

export type Key = keyof typeof en;

const fr = {
  connecting: "Connexion…",
  online: "En ligne",
  reconnecting: "Reconnexion…",
  offline: "Hors ligne : les messages partiront dès le retour de la connexion",
  supportChat: "Chat d'assistance",
  openChat: "Ouvrir le chat d'assistance",
  closeChat: "Fermer le chat d'assistance",
  close: "Fermer",
  allConversations: "Toutes les conversations",
  newConversation: "Nouvelle conversation",
  closedTag: "Fermée",
  earlier: "Messages précédents",
  closed: "Cette conversation a été fermée.",
  writeToReopen: "Écrivez ci-dessous pour la rouvrir.",
  isTyping: "{name} écrit…",
  placeholder: "Écrivez un message…",
  placeholderClosed: "Écrivez pour rouvrir cette conversation…",
  message: "Message",
  send: "Envoyer",
  attach: "Envoyer un fichier ou une image",
  seen: "Vu",
  sending: "Envoi…",
  notSentYet: "Pas encore envoyé : il partira dès que l'assistance sera joignable",
  notSent: "Non envoyé",
  retry: "Réessayer",
  delete: "Supprimer",
  support: "Assistance",
  away: "Nous sommes absents",
  backAt: "De retour {when}",
  replies_minutes: "Répond généralement en quelques minutes",
  replies_hour: "Répond généralement en moins d'une heure",
  replies_hours: "Répond généralement en quelques heures",
  replies_day: "Répond généralement sous un jour",
  rateTitle: "Comment s'est passée cette conversation ?",
  rateStar: "{n} sur 5",
  rateComment: "Un commentaire ? (facultatif)",
  rateSend: "Envoyer la note",
  rateThanks: "Merci pour votre avis !",
  blocked_identity_title: "Connectez-vous pour discuter avec l'assistance",
  blocked_identity_detail: "Connectez-vous à votre compte sur ce site, puis rouvrez ce chat.",
  blocked_origin_title: "Le chat d'assistance n'est pas disponible sur ce site",
  blocked_origin_detail: "Merci de nous contacter autrement pour le moment.",
  blocked_unavailable_title: "Le chat d'assistance n'est pas disponible pour le moment",
  blocked_unavailable_detail: "Merci de réessayer plus tard.",
} satisfies Record<Key, string>;

const CATALOGUE: Record<Language, Record<Key, string>> = { en, fr };

export type Translate = (key: Key, values?: Record<string, string | number>) => string;

export function translator(language: string | undefined): Translate {
  const words = CATALOGUE[(LANGUAGES as string[]).includes(language ?? "") ? (language as Language) : "en"];
  return (key, values) => words[key].replace(/\{(\w+)\}/g, (_, name: string) => String(values?.[name] ?? ""));
}

export function blockedText(t: Translate, blocked: Blocked): { title: string; detail: string } {
  return { title: t(`blocked_${blocked}_title`), detail: t(`blocked_${blocked}_detail`) };
}

/** "Usually replies in …" from the median first-response time; null without data. */
export function expectedReply(t: Translate, seconds: number | null | undefined): string | null {
  if (seconds === null || seconds === undefined) return null;
  if (seconds <= 15 * 60) return t("replies_minutes");
  if (seconds <= 60 * 60) return t("replies_hour");
  if (seconds <= 6 * 60 * 60) return t("replies_hours");
  return t("replies_day");
}

/** When the team is back, in the messenger's language and the visitor's own time zone. */
export function backWhen(language: string, iso: string): string {
  const date = new Date(iso);
  return new Intl.DateTimeFormat(language, { weekday: "long", hour: "2-digit", minute: "2-digit" }).format(date);
}

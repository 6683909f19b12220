package bridges

import (
	"fmt"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Language is a language the gateway's own texts for people (notices, command answers) are
// written in: a lower-case ISO 639-1 code.
type Language string

// Languages of the catalogue.
const (
	English Language = "en"
	German  Language = "de"
)

// Languages lists the languages the catalogue has every phrase in.
var Languages = []Language{English, German}

// ParseLanguage returns the catalogue language of a language tag such as "de", "de-DE", "de_AT"
// or "EN-gb" (BCP 47 or POSIX style; only the primary subtag counts). ok is false for a language
// the catalogue does not have.
func ParseLanguage(tag string) (Language, bool) {
	primary, _, _ := strings.Cut(strings.TrimSpace(tag), "-")
	primary, _, _ = strings.Cut(primary, "_")
	l := Language(strings.ToLower(primary))
	for _, have := range Languages {
		if l == have {
			return l, true
		}
	}
	return "", false
}

// Phrase names one text of the catalogue. Its arguments are documented with the constant.
type Phrase string

// Phrases. Adapters word everything they say to people with these, so that the wording is the
// same on every network and a new language is added in one place.
const (
	// PhraseReference follows every notice: the correlation ID (1) an admin finds in the log.
	PhraseReference Phrase = "reference"
	// PhraseInviteUserUnknown and the other PhraseInvite… say why user (1) could not be added;
	// (2) is the partner provider. NoticeText picks one by the notice's Reason. A partner
	// answers noConsent both for a user it does not have and for one who does not accept the
	// inviter (so that nobody can probe who exists): PhraseInviteNoConsent says both.
	PhraseInviteUserUnknown Phrase = "invite.userUnknown"
	PhraseInviteNoConsent   Phrase = "invite.noConsent"
	PhraseInviteNotAllowed  Phrase = "invite.notAllowed"
	PhraseInviteUnreachable Phrase = "invite.unreachable"
	PhraseInviteNoKeys      Phrase = "invite.noKeys"
	PhraseInviteFailed      Phrase = "invite.failed"
	// PhraseInviteFixed: (1) could not be added because the conversation is a 1:1 (its MIMI
	// room has fixed membership: room-policy base_room_policy fixed_membership).
	PhraseInviteFixed Phrase = "invite.fixedMembership"
	// PhraseRefusedThis: the message the notice is attached to was refused by (1).
	PhraseRefusedThis Phrase = "refused.this"
	// PhraseRefused: a message of the user was refused by (1).
	PhraseRefused Phrase = "refused"
	// PhraseUndeliveredThis: the message the notice is attached to could not be delivered to (1).
	PhraseUndeliveredThis Phrase = "undelivered.this"
	// PhraseUndelivered: a message of the user could not be delivered to (1).
	PhraseUndelivered Phrase = "undelivered"
	// PhrasePartnerUnreachable: (1) does not answer; messages are kept.
	PhrasePartnerUnreachable Phrase = "partner.unreachable"
	// PhrasePartnerReachable: (1) answers again.
	PhrasePartnerReachable Phrase = "partner.reachable"
	// PhraseRoomFailed: the conversation could not be set up with (1).
	PhraseRoomFailed Phrase = "room.failed"
	// PhrasePartnerUnknown names the partner when the notice does not.
	PhrasePartnerUnknown Phrase = "partner.unknown"
	// PhraseReacted: (1) reacted with (2).
	PhraseReacted Phrase = "reacted"
	// PhraseMemberAdded, PhraseMemberLeft and PhraseMemberRemoved: partner user (1) was added to,
	// left, or was removed from the conversation (shown where partner users have no account).
	PhraseMemberAdded   Phrase = "member.added"
	PhraseMemberLeft    Phrase = "member.left"
	PhraseMemberRemoved Phrase = "member.removed"
	// PhraseUnreadable: the gateway cannot decrypt the message the notice answers.
	PhraseUnreadable Phrase = "unreadable"
	// PhraseNotRelayed: the message the notice answers could not be passed on and was given up
	// after repeated attempts; (1) is the reference.
	PhraseNotRelayed Phrase = "not.relayed"
	// PhraseWithdrawInvite asks the inviter to withdraw the Matrix invite of (1), which the
	// gateway's account may not.
	PhraseWithdrawInvite Phrase = "invite.withdraw"
	// PhraseAboutChat introduces a notice sent outside the 1:1 conversation with (1) it is about.
	PhraseAboutChat Phrase = "about.chat"
	// PhraseAboutRoom introduces a notice sent outside the group chat (1) it is about.
	PhraseAboutRoom Phrase = "about.room"
	// PhraseAttachmentUnavailable: the attachment named (1) could not be fetched or opened.
	PhraseAttachmentUnavailable Phrase = "attachment.unavailable"
	// PhraseDeletedBy: a message was deleted by (1).
	PhraseDeletedBy Phrase = "deleted.by"
	// PhraseStartedBy: (1) started a conversation with the user.
	PhraseStartedBy Phrase = "started.by"
	// PhraseStarted: a conversation from provider (1) was opened.
	PhraseStarted Phrase = "started"
	// PhraseRoleChanged: user (1) now has role (2) in the room, which the account cannot show.
	PhraseRoleChanged Phrase = "role.changed"
	// PhraseRoleOwner and the other PhraseRole… name room roles (for PhraseRoleChanged).
	PhraseRoleOwner   Phrase = "role.owner"
	PhraseRoleAdmin   Phrase = "role.admin"
	PhraseRoleRegular Phrase = "role.regular"
	// PhraseInviting: the gateway invites (1).
	PhraseInviting Phrase = "cmd.inviting"
	// PhraseInviteAddress: (1) is not an address the gateway can invite.
	PhraseInviteAddress Phrase = "cmd.invite.address"
	// PhraseInviteLocal: (1) is a user of this server; the user invites them directly.
	PhraseInviteLocal Phrase = "cmd.invite.local"
	// PhraseUnknownCommand: (1) is not a command; (2) is how to ask for help.
	PhraseUnknownCommand Phrase = "cmd.unknown"
	// PhraseCommandFailed: the command could not be carried out now; (1) is the reference.
	PhraseCommandFailed Phrase = "cmd.failed"
	// PhraseHelpIntro starts the help text; (1) is the command prefix.
	PhraseHelpIntro Phrase = "cmd.help.intro"
	// PhraseHelpInvite and PhraseHelpHelp describe the commands.
	PhraseHelpInvite Phrase = "cmd.help.invite"
	PhraseHelpHelp   Phrase = "cmd.help.help"
)

// catalogue holds every phrase in every language; TestCatalogue checks it is complete and that
// each language uses the same arguments.
var catalogue = map[Language]map[Phrase]string{
	English: {
		PhraseReference:             "(reference %s)",
		PhraseInviteUserUnknown:     "%[1]s could not be added to this conversation: %[2]s has no such user.",
		PhraseInviteNoConsent:       "%[1]s could not be added to this conversation: either %[2]s has no such user, or they have not agreed to be contacted from outside their organisation.",
		PhraseInviteNotAllowed:      "%[1]s could not be added to this conversation: the rules of this room or of %[2]s do not allow it.",
		PhraseInviteUnreachable:     "%[1]s could not be added to this conversation: %[2]s cannot be reached.",
		PhraseInviteFailed:          "%[1]s could not be added to this conversation: %[2]s refused.",
		PhraseInviteNoKeys:          "%[1]s could not be added to this conversation: %[2]s could not set up end-to-end encryption for them.",
		PhraseInviteFixed:           "%[1]s could not be added to this conversation: it is a one-to-one conversation, and nobody else can join it. To talk with more people, start a new group conversation.",
		PhraseRefusedThis:           "This message was not delivered: %s refused it.",
		PhraseRefused:               "A message you sent was not delivered: %s refused it.",
		PhraseUndeliveredThis:       "This message could not be delivered to %s, and the gateway has stopped trying.",
		PhraseUndelivered:           "A message you sent could not be delivered to %s, and the gateway has stopped trying.",
		PhrasePartnerUnreachable:    "%s cannot be reached at the moment. Your messages are kept and will be delivered when it is back.",
		PhrasePartnerReachable:      "%s can be reached again. Kept messages are being delivered now.",
		PhraseRoomFailed:            "This conversation could not be set up with %s.",
		PhrasePartnerUnknown:        "the other side",
		PhraseReacted:               "%[1]s reacted with %[2]s",
		PhraseDeletedBy:             "deleted by %s",
		PhraseAttachmentUnavailable: "[%s is not available]",
		PhraseAboutChat:             "About your conversation with %s:",
		PhraseMemberAdded:           "%s was added to this conversation.",
		PhraseMemberLeft:            "%s left this conversation.",
		PhraseMemberRemoved:         "%s was removed from this conversation.",
		PhraseUnreadable:            "The gateway cannot decrypt this message: its key has not reached the gateway's device. It is relayed if the key still arrives; otherwise please send it again.",
		PhraseNotRelayed:            "The gateway could not pass this message on, although it tried several times; please send it again. (reference %s)",
		PhraseWithdrawInvite:        "Please withdraw the invitation of %s.",
		PhraseAboutRoom:             "About the group chat %s:",
		PhraseStartedBy:             "%s started this conversation with you through MIMI.",
		PhraseStarted:               "This conversation with %s was opened through MIMI.",
		PhraseRoleChanged:           "%[1]s is now %[2]s in this conversation (this account cannot change power levels here).",
		PhraseRoleOwner:             "an owner",
		PhraseRoleAdmin:             "an admin",
		PhraseRoleRegular:           "a regular participant",
		PhraseInviting:              "Inviting %s. You will be told here if that fails.",
		PhraseInviteAddress:         "%q is not an address I can invite. Write it as bob@amt-b.example or mimi://amt-b.example/u/bob.",
		PhraseInviteLocal:           "%s is a user of this server: invite them to the room directly.",
		PhraseUnknownCommand:        "I do not know the command %[1]q. Write %[2]q for the list.",
		PhraseCommandFailed:         "That did not work just now; please try again. (reference %s)",
		PhraseHelpIntro:             "Commands (in a room with other people, start them with %s):",
		PhraseHelpInvite:            "invite ADDRESS: add a person of a partner organisation to this room, e.g. invite bob@amt-b.example or invite mimi://amt-b.example/u/bob",
		PhraseHelpHelp:              "help: this list",
	},
	German: {
		PhraseReference:             "(Referenz %s)",
		PhraseInviteUserUnknown:     "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: Bei %[2]s gibt es diese Person nicht.",
		PhraseInviteNoConsent:       "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: Entweder gibt es diese Person bei %[2]s nicht, oder sie hat einer Kontaktaufnahme von außerhalb ihrer Organisation nicht zugestimmt.",
		PhraseInviteNotAllowed:      "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: Die Regeln dieses Raums oder von %[2]s erlauben es nicht.",
		PhraseInviteUnreachable:     "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: %[2]s ist nicht erreichbar.",
		PhraseInviteFailed:          "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: %[2]s hat abgelehnt.",
		PhraseInviteNoKeys:          "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: %[2]s konnte die Ende-zu-Ende-Verschlüsselung für diese Person nicht einrichten.",
		PhraseInviteFixed:           "%[1]s konnte nicht zu dieser Unterhaltung hinzugefügt werden: Es ist eine Unterhaltung zu zweit, zu der niemand weiteres hinzukommen kann. Um mit mehr Personen zu sprechen, beginnen Sie eine neue Gruppenunterhaltung.",
		PhraseRefusedThis:           "Diese Nachricht wurde nicht zugestellt: %s hat sie abgelehnt.",
		PhraseRefused:               "Eine Ihrer Nachrichten wurde nicht zugestellt: %s hat sie abgelehnt.",
		PhraseUndeliveredThis:       "Diese Nachricht konnte nicht an %s zugestellt werden; das Gateway hat die Zustellung aufgegeben.",
		PhraseUndelivered:           "Eine Ihrer Nachrichten konnte nicht an %s zugestellt werden; das Gateway hat die Zustellung aufgegeben.",
		PhrasePartnerUnreachable:    "%s ist zurzeit nicht erreichbar. Ihre Nachrichten werden aufbewahrt und zugestellt, sobald die Verbindung wieder besteht.",
		PhrasePartnerReachable:      "%s ist wieder erreichbar. Aufbewahrte Nachrichten werden jetzt zugestellt.",
		PhraseRoomFailed:            "Diese Unterhaltung konnte mit %s nicht eingerichtet werden.",
		PhrasePartnerUnknown:        "die Gegenseite",
		PhraseReacted:               "%[1]s hat mit %[2]s reagiert",
		PhraseDeletedBy:             "gelöscht von %s",
		PhraseAttachmentUnavailable: "[%s ist nicht verfügbar]",
		PhraseAboutChat:             "Zu Ihrer Unterhaltung mit %s:",
		PhraseMemberAdded:           "%s wurde zu dieser Unterhaltung hinzugefügt.",
		PhraseMemberLeft:            "%s hat diese Unterhaltung verlassen.",
		PhraseMemberRemoved:         "%s wurde aus dieser Unterhaltung entfernt.",
		PhraseUnreadable:            "Das Gateway kann diese Nachricht nicht entschlüsseln: Ihr Schlüssel hat das Gerät des Gateways nicht erreicht. Sie wird weitergeleitet, falls der Schlüssel noch eintrifft; sonst senden Sie sie bitte erneut.",
		PhraseNotRelayed:            "Das Gateway konnte diese Nachricht trotz mehrerer Versuche nicht weiterleiten; bitte senden Sie sie erneut. (Referenz %s)",
		PhraseWithdrawInvite:        "Bitte ziehen Sie die Einladung von %s zurück.",
		PhraseAboutRoom:             "Zum Gruppenchat %s:",
		PhraseStartedBy:             "%s hat diese Unterhaltung mit Ihnen über MIMI begonnen.",
		PhraseStarted:               "Diese Unterhaltung mit %s wurde über MIMI eröffnet.",
		PhraseRoleChanged:           "%[1]s ist jetzt %[2]s in dieser Unterhaltung (dieses Konto kann hier keine Berechtigungen ändern).",
		PhraseRoleOwner:             "Eigentümer",
		PhraseRoleAdmin:             "Administrator",
		PhraseRoleRegular:           "normales Mitglied",
		PhraseInviting:              "%s wird eingeladen. Falls das nicht gelingt, erfahren Sie es hier.",
		PhraseInviteAddress:         "%q ist keine Adresse, die ich einladen kann. Schreiben Sie sie als bob@amt-b.example oder mimi://amt-b.example/u/bob.",
		PhraseInviteLocal:           "%s ist ein Konto dieses Servers: Laden Sie es direkt in den Raum ein.",
		PhraseUnknownCommand:        "Den Befehl %[1]q kenne ich nicht. Schreiben Sie %[2]q für die Liste.",
		PhraseCommandFailed:         "Das hat gerade nicht geklappt; bitte versuchen Sie es noch einmal. (Referenz %s)",
		PhraseHelpIntro:             "Befehle (in einem Raum mit anderen Personen mit %s davor):",
		PhraseHelpInvite:            "einladen ADRESSE: eine Person einer Partnerorganisation in diesen Raum holen, z. B. einladen bob@amt-b.example oder einladen mimi://amt-b.example/u/bob",
		PhraseHelpHelp:              "hilfe: diese Liste",
	},
}

// Say returns phrase p in lang (English when lang has no catalogue) with args filled in.
func Say(lang Language, p Phrase, args ...any) string {
	texts, ok := catalogue[lang]
	if !ok {
		texts = catalogue[English]
	}
	f, ok := texts[p]
	if !ok {
		return string(p)
	}
	if len(args) == 0 {
		return f
	}
	return fmt.Sprintf(f, args...)
}

// NoticeText words a notice for the user who caused it, in lang, ending with the correlation ID.
// target is how the adapter names the notice's Target (empty: local@domain); attached says the
// notice is shown as an answer to the failed message itself, so it may speak of "this message".
func NoticeText(lang Language, n *event.Notice, target string, attached bool) string {
	partner := string(n.Partner)
	if partner == "" && n.Target != "" {
		partner = string(n.Target.Domain())
	}
	if partner == "" {
		partner = Say(lang, PhrasePartnerUnknown)
	}
	if target == "" && n.Target != "" {
		target = n.Target.Local() + "@" + string(n.Target.Domain())
	}
	var text string
	switch n.Code {
	case event.NoticeInviteFailed:
		p := PhraseInviteFailed
		switch n.Reason {
		case "userUnknown", "userDeleted":
			p = PhraseInviteUserUnknown
		case "noKeyPackage", "incompatibleProtocol":
			p = PhraseInviteNoKeys
		case "noConsent":
			p = PhraseInviteNoConsent
		case "notAllowed", "forbidden":
			p = PhraseInviteNotAllowed
		case "fixedMembership":
			p = PhraseInviteFixed
		case "unreachable":
			p = PhraseInviteUnreachable
		}
		text = Say(lang, p, target, partner)
	case event.NoticeRefused:
		text = Say(lang, pick(attached, PhraseRefusedThis, PhraseRefused), partner)
	case event.NoticeUndelivered:
		text = Say(lang, pick(attached, PhraseUndeliveredThis, PhraseUndelivered), partner)
	case event.NoticePartnerUnreachable:
		text = Say(lang, PhrasePartnerUnreachable, partner)
	case event.NoticePartnerReachable:
		text = Say(lang, PhrasePartnerReachable, partner)
	case event.NoticeConsentPending: // reach.go
		text = Say(lang, PhraseConsentPending, target)
	case event.NoticeConsentGranted:
		text = Say(lang, PhraseConsentGranted, target)
	case event.NoticeConsentRequest:
		text = ConsentRequestText(lang, n)
	default:
		text = Say(lang, PhraseRoomFailed, partner)
	}
	return text + " " + Say(lang, PhraseReference, n.Correlation)
}

// RoleName names a room role for people in lang (for PhraseRoleChanged); a role without a
// phrase by its number.
func RoleName(lang Language, r event.Role) string {
	switch r {
	case event.RoleOwner:
		return Say(lang, PhraseRoleOwner)
	case event.RoleAdmin:
		return Say(lang, PhraseRoleAdmin)
	case event.RoleRegular:
		return Say(lang, PhraseRoleRegular)
	}
	return fmt.Sprintf("role %d", r)
}

// NoticeIsPersonal reports whether a notice is about something its Sender did (an invite, a
// message), to be shown to that user; the others (a partner's reachability) concern everyone in
// the room.
func NoticeIsPersonal(c event.NoticeCode) bool {
	return c != event.NoticePartnerUnreachable && c != event.NoticePartnerReachable
}

func pick(c bool, yes, no Phrase) Phrase {
	if c {
		return yes
	}
	return no
}

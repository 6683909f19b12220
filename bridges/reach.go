package bridges

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Reaching people of partner organisations: the commands search, start, consent and
// reachability are the same on every network. An adapter registers ReachCommands in its
// CommandSet, answers them with RunReach (start needs the adapter to make the conversation:
// ResolveStart tells it whom), and words the consent notices with NoticeText.

// Reach is what the gateway's MIMI endpoint does for people's commands (the binary implements it
// over core/provider). Every method acts for user, a local user.
type Reach interface {
	// Search asks partners who matches text (an address or a name).
	Search(ctx context.Context, user event.UserURI, text string) ([]Person, error)
	// Allow, Deny and Revoke answer other, a partner's user, who asked (or may ask) to reach user.
	Allow(ctx context.Context, user, other event.UserURI) error
	Deny(ctx context.Context, user, other event.UserURI) error
	Revoke(ctx context.Context, user, other event.UserURI) error
	// SetReachability sets user's own setting: partners, consent, nobody, or "" for the default.
	SetReachability(ctx context.Context, user event.UserURI, setting string) error
	// Consent returns user's setting, whom she accepted and her recent requests.
	Consent(ctx context.Context, user event.UserURI) (ConsentView, error)
	// Report sends user's abuse report of the message with MIMI ID messageID in room to the
	// room's hub; an error wrapping ErrNotReportable means the message cannot be reported.
	Report(ctx context.Context, user event.UserURI, room event.RoomURI, messageID []byte, note string) error
}

// Person is someone a search found.
type Person struct {
	User event.UserURI
	Name string
}

// ConsentView is what "consent list" shows.
type ConsentView struct {
	Setting string
	Own     bool
	// Accepted are the partner users the user accepted.
	Accepted []event.UserURI
	// Requests are open requests: Requester asked Target.
	Requests []ConsentRequest
}

// ConsentRequest is a request for consent and where it stands (pending, granted, denied,
// cancelled, revoked).
type ConsentRequest struct {
	Requester, Target event.UserURI
	State             string
}

// Errors a Reach's Search wraps.
var (
	// ErrSearchRefused: the partner does not answer such a search (too broad, not published).
	ErrSearchRefused = errors.New("bridges: search refused")
	// ErrSearchAmbiguous: several people match.
	ErrSearchAmbiguous = errors.New("bridges: several people match")
	// ErrNotPartner: the address names an organisation that is not a partner.
	ErrNotPartner = errors.New("bridges: not a partner")
	// ErrReachUnavailable: the MIMI endpoint is not running.
	ErrReachUnavailable = errors.New("bridges: the MIMI endpoint is not running")
	// ErrNotReportable: the message is not one the user received from a partner with a frank
	// (or it is older than a week).
	ErrNotReportable = errors.New("bridges: this message cannot be reported")
)

// Phrases of the reach commands and notices.
const (
	PhraseHelpSearch       Phrase = "cmd.help.search"
	PhraseHelpStart        Phrase = "cmd.help.start"
	PhraseHelpConsent      Phrase = "cmd.help.consent"
	PhraseHelpReachability Phrase = "cmd.help.reachability"
	// PhraseFound: (1) is the list of people found, one per line.
	PhraseFound Phrase = "cmd.search.found"
	// PhraseFoundLine: (1) the person's name (or address), (2) her address.
	PhraseFoundLine Phrase = "cmd.search.line"
	// PhraseNotFound: nobody matches (1).
	PhraseNotFound Phrase = "cmd.search.none"
	// PhraseSearchRefused: the partner does not answer a search like (1).
	PhraseSearchRefused Phrase = "cmd.search.refused"
	// PhraseSearchAmbiguous: several people match (1).
	PhraseSearchAmbiguous Phrase = "cmd.search.ambiguous"
	// PhraseNotPartner: (1) is not a partner organisation.
	PhraseNotPartner Phrase = "cmd.notpartner"
	// PhraseReachUnavailable: the gateway cannot search or answer for consent now.
	PhraseReachUnavailable Phrase = "cmd.reach.unavailable"
	// PhraseStarting: a conversation with (1) is being set up.
	PhraseStarting Phrase = "cmd.start"
	// PhraseAllowed, PhraseDenied, PhraseRevoked: the user's answer about (1) is recorded.
	PhraseAllowed Phrase = "cmd.consent.allowed"
	PhraseDenied  Phrase = "cmd.consent.denied"
	PhraseRevoked Phrase = "cmd.consent.revoked"
	// PhraseConsentSetting: (1) the user's reachability in words, (2) "" or PhraseOwnSetting's text.
	PhraseConsentSetting Phrase = "cmd.consent.setting"
	// PhraseDefaultSetting marks the organisation's default.
	PhraseDefaultSetting Phrase = "cmd.consent.default"
	// PhraseConsentAccepted: (1) the people accepted, comma-separated.
	PhraseConsentAccepted Phrase = "cmd.consent.accepted"
	// PhraseConsentPendingList: (1) the people waiting for an answer, comma-separated.
	PhraseConsentPendingList Phrase = "cmd.consent.pending"
	// PhraseReachPartners and the other PhraseReach… word a reachability setting.
	PhraseReachPartners Phrase = "reach.partners"
	PhraseReachConsent  Phrase = "reach.consent"
	PhraseReachNobody   Phrase = "reach.nobody"
	// PhraseReachabilitySet: the setting is now (1).
	PhraseReachabilitySet Phrase = "cmd.reachability.set"
	// PhraseBadSetting: (1) is not a setting; (2) lists them.
	PhraseBadSetting Phrase = "cmd.reachability.bad"
	// PhraseConsentRequest: partner user (1) asks to write to the user; (2) the command to accept.
	PhraseConsentRequest Phrase = "notice.consent.request"
	// PhraseConsentPending: (1) could not be added yet: the partner's answer is the same for a
	// user who does not exist and one who has not accepted the inviter (so that nobody can probe
	// who exists), and the text says both; the invite waits for her consent.
	PhraseConsentPending Phrase = "notice.consent.pending"
	// PhraseConsentGranted: (1) accepted; the conversation is being set up.
	PhraseConsentGranted Phrase = "notice.consent.granted"
	// PhraseHelpReport describes report; PhraseReported: the report went to provider (1);
	// PhraseNotReportable: the message cannot be reported; PhraseReportHow: report is an answer.
	PhraseHelpReport    Phrase = "cmd.help.report"
	PhraseReported      Phrase = "cmd.report.done"
	PhraseNotReportable Phrase = "cmd.report.not"
	PhraseReportHow     Phrase = "cmd.report.how"
)

func init() {
	for l, texts := range map[Language]map[Phrase]string{
		English: {
			PhraseHelpSearch:         "search TEXT: find a person of a partner organisation by address, e-mail address or name, e.g. search bob@amt-b.example",
			PhraseHelpStart:          "start ADDRESS: start a conversation with a person of a partner organisation (address, e-mail address or mimi://amt-b.example/u/bob)",
			PhraseHelpConsent:        "consent list | allow ADDRESS | deny ADDRESS | revoke ADDRESS: see and answer who may write to you from partner organisations",
			PhraseHelpReachability:   "reachability partners | consent | nobody | default: who outside your organisation may write to you",
			PhraseFound:              "Found:\n%s",
			PhraseFoundLine:          "%[1]s: %[2]s",
			PhraseNotFound:           "Nobody found for %q.",
			PhraseSearchRefused:      "The partner does not answer a search like %q. Search by an exact address or a longer name.",
			PhraseSearchAmbiguous:    "Several people match %q. Search by an exact address or a longer name.",
			PhraseNotPartner:         "%s is not a partner organisation of this gateway.",
			PhraseReachUnavailable:   "Searching and consent are not available on this gateway just now.",
			PhraseStarting:           "Starting a conversation with %s. You will be told here if it has to wait or fails.",
			PhraseAllowed:            "%s may now write to you.",
			PhraseDenied:             "%s will not be able to write to you.",
			PhraseRevoked:            "%s may no longer start conversations with you.",
			PhraseConsentSetting:     "Who outside your organisation may write to you: %[1]s%[2]s.",
			PhraseDefaultSetting:     " (your organisation's default)",
			PhraseConsentAccepted:    "You accepted: %s",
			PhraseConsentPendingList: "Waiting for your answer: %s",
			PhraseReachPartners:      "anyone at a partner organisation",
			PhraseReachConsent:       "only people you accepted",
			PhraseReachNobody:        "nobody",
			PhraseReachabilitySet:    "Done. Who outside your organisation may write to you: %s.",
			PhraseBadSetting:         "%[1]q is not a setting. Choose one of: %[2]s.",
			PhraseConsentRequest:     "%[1]s of a partner organisation would like to write to you. To accept, answer: %[2]s (or consent deny with the same address to refuse).",
			PhraseConsentPending:     "%s could not be added yet: either there is no such user, or they have not yet agreed to be contacted from outside their organisation. If they exist, they have been asked; the conversation starts when they accept.",
			PhraseConsentGranted:     "%s accepted. The conversation is being set up.",
			PhraseHelpReport:         "report [NOTE]: as an answer to a message of a partner's user, report it to the administrators of the organisation that hosts the conversation",
			PhraseReported:           "Your report was sent to the administrators of %s.",
			PhraseNotReportable:      "This message cannot be reported (only messages from people of partner organisations of the last seven days can).",
			PhraseReportHow:          "Write report as an answer to the message you want to report.",
		},
		German: {
			PhraseHelpSearch:         "suchen TEXT: eine Person einer Partnerorganisation nach Adresse, E-Mail-Adresse oder Name finden, z. B. suchen bob@amt-b.example",
			PhraseHelpStart:          "starten ADRESSE: eine Unterhaltung mit einer Person einer Partnerorganisation beginnen (Adresse, E-Mail-Adresse oder mimi://amt-b.example/u/bob)",
			PhraseHelpConsent:        "einwilligung liste | erlauben ADRESSE | ablehnen ADRESSE | widerrufen ADRESSE: sehen und beantworten, wer Ihnen aus Partnerorganisationen schreiben darf",
			PhraseHelpReachability:   "erreichbarkeit partner | einwilligung | niemand | standard: wer Ihnen von außerhalb Ihrer Organisation schreiben darf",
			PhraseFound:              "Gefunden:\n%s",
			PhraseFoundLine:          "%[1]s: %[2]s",
			PhraseNotFound:           "Niemand gefunden für %q.",
			PhraseSearchRefused:      "Die Partnerorganisation beantwortet eine Suche wie %q nicht. Suchen Sie nach einer genauen Adresse oder einem längeren Namen.",
			PhraseSearchAmbiguous:    "Mehrere Personen passen zu %q. Suchen Sie nach einer genauen Adresse oder einem längeren Namen.",
			PhraseNotPartner:         "%s ist keine Partnerorganisation dieses Gateways.",
			PhraseReachUnavailable:   "Suche und Einwilligungen sind auf diesem Gateway gerade nicht verfügbar.",
			PhraseStarting:           "Eine Unterhaltung mit %s wird begonnen. Falls sie warten muss oder nicht gelingt, erfahren Sie es hier.",
			PhraseAllowed:            "%s darf Ihnen jetzt schreiben.",
			PhraseDenied:             "%s wird Ihnen nicht schreiben können.",
			PhraseRevoked:            "%s darf keine Unterhaltungen mit Ihnen mehr beginnen.",
			PhraseConsentSetting:     "Wer Ihnen von außerhalb Ihrer Organisation schreiben darf: %[1]s%[2]s.",
			PhraseDefaultSetting:     " (Voreinstellung Ihrer Organisation)",
			PhraseConsentAccepted:    "Sie haben zugestimmt: %s",
			PhraseConsentPendingList: "Warten auf Ihre Antwort: %s",
			PhraseReachPartners:      "alle Personen der Partnerorganisationen",
			PhraseReachConsent:       "nur Personen, denen Sie zugestimmt haben",
			PhraseReachNobody:        "niemand",
			PhraseReachabilitySet:    "Erledigt. Wer Ihnen von außerhalb Ihrer Organisation schreiben darf: %s.",
			PhraseBadSetting:         "%[1]q ist keine Einstellung. Wählen Sie eine von: %[2]s.",
			PhraseConsentRequest:     "%[1]s aus einer Partnerorganisation möchte Ihnen schreiben. Zum Zustimmen antworten Sie: %[2]s (oder einwilligung ablehnen mit derselben Adresse, um abzulehnen).",
			PhraseConsentPending:     "%s konnte noch nicht hinzugefügt werden: Entweder gibt es diese Person nicht, oder sie hat einer Kontaktaufnahme von außerhalb ihrer Organisation noch nicht zugestimmt. Falls es sie gibt, wurde sie gefragt; die Unterhaltung beginnt, sobald sie zustimmt.",
			PhraseConsentGranted:     "%s hat zugestimmt. Die Unterhaltung wird eingerichtet.",
			PhraseHelpReport:         "melden [NOTIZ]: als Antwort auf eine Nachricht einer Person eines Partners diese der Administration der Organisation melden, die die Unterhaltung hostet",
			PhraseReported:           "Ihre Meldung wurde an die Administration von %s gesendet.",
			PhraseNotReportable:      "Diese Nachricht kann nicht gemeldet werden (nur Nachrichten von Personen der Partnerorganisationen aus den letzten sieben Tagen).",
			PhraseReportHow:          "Schreiben Sie melden als Antwort auf die Nachricht, die Sie melden möchten.",
		},
	} {
		for p, s := range texts {
			catalogue[l][p] = s
		}
	}
}

// Names of the reach commands and their words per language.
var (
	consentSub = map[string]map[Language]string{
		"list": {German: "liste"}, "allow": {German: "erlauben"}, "deny": {German: "ablehnen"}, "revoke": {German: "widerrufen"},
	}
	settingWords = map[string]map[Language]string{
		"partners": {German: "partner"}, "consent": {German: "einwilligung"}, "nobody": {German: "niemand"}, "default": {German: "standard"},
	}
)

// ReachCommands are the specs of search, start, consent and reachability.
func ReachCommands() []CommandSpec {
	return []CommandSpec{
		{Name: "search", Names: map[Language]string{German: "suchen"}, MinArgs: 1, MaxArgs: maxCommandArgs, Help: PhraseHelpSearch},
		{Name: "start", Names: map[Language]string{German: "starten"}, MinArgs: 1, MaxArgs: 1, Help: PhraseHelpStart},
		{Name: "consent", Names: map[Language]string{German: "einwilligung"}, MinArgs: 1, MaxArgs: 2, Help: PhraseHelpConsent},
		{Name: "reachability", Names: map[Language]string{German: "erreichbarkeit"}, MinArgs: 1, MaxArgs: 1, Help: PhraseHelpReachability},
	}
}

// canonical returns the canonical word of w among words (any language), or "".
func canonical(w string, words map[string]map[Language]string) string {
	w = strings.ToLower(w)
	for c, names := range words {
		if w == c {
			return c
		}
		for _, n := range names {
			if w == n {
				return c
			}
		}
	}
	return ""
}

// wordIn is canonical word c in lang.
func wordIn(c string, words map[string]map[Language]string, lang Language) string {
	if n, ok := words[c][lang]; ok {
		return n
	}
	return c
}

// Address writes a user's address as people write it: bob@amt-b.example.
func Address(u event.UserURI) string { return u.Local() + "@" + string(u.Domain()) }

// RunReach answers a search, consent or reachability command of local user user (start is the
// adapter's: see ResolveStart). A nil r answers that the commands are unavailable. An error is
// one to retry (the store does not answer); what the user did wrong is in the answer.
func RunReach(ctx context.Context, r Reach, user event.UserURI, c Command, lang Language) (string, error) {
	if r == nil {
		return Say(lang, PhraseReachUnavailable), nil
	}
	switch c.Name {
	case "search":
		text := strings.Join(c.Args, " ")
		found, err := r.Search(ctx, user, text)
		if answer, ok := searchAnswer(lang, text, err); ok {
			return answer, nil
		}
		if len(found) == 0 {
			return Say(lang, PhraseNotFound, text), nil
		}
		var lines []string
		for _, p := range found {
			name := p.Name
			if name == "" {
				name = Address(p.User)
			}
			lines = append(lines, "• "+Say(lang, PhraseFoundLine, name, string(p.User)))
		}
		return Say(lang, PhraseFound, strings.Join(lines, "\n")), nil
	case "consent":
		return runConsent(ctx, r, user, c, lang)
	case "reachability":
		s := canonical(c.Args[0], settingWords)
		if s == "" {
			var names []string
			for _, w := range []string{"partners", "consent", "nobody", "default"} {
				names = append(names, wordIn(w, settingWords, lang))
			}
			return Say(lang, PhraseBadSetting, truncateRunes(c.Args[0], 32), strings.Join(names, ", ")), nil
		}
		if s == "default" {
			s = ""
		}
		if err := r.SetReachability(ctx, user, s); err != nil {
			return "", err
		}
		v, err := r.Consent(ctx, user)
		if err != nil {
			return "", err
		}
		return Say(lang, PhraseReachabilitySet, settingText(lang, v.Setting)), nil
	}
	return Say(lang, PhraseUnknownCommand, c.Name, "help"), nil
}

// searchAnswer words a search error; ok is false for no error.
func searchAnswer(lang Language, text string, err error) (string, bool) {
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, ErrSearchAmbiguous):
		return Say(lang, PhraseSearchAmbiguous, text), true
	case errors.Is(err, ErrSearchRefused):
		return Say(lang, PhraseSearchRefused, text), true
	case errors.Is(err, ErrNotPartner):
		d := text
		if i := strings.LastIndex(text, "@"); i >= 0 {
			d = text[i+1:]
		}
		return Say(lang, PhraseNotPartner, truncateRunes(d, 64)), true
	case errors.Is(err, ErrReachUnavailable):
		return Say(lang, PhraseReachUnavailable), true
	}
	return Say(lang, PhraseCommandFailed, "search"), true
}

func settingText(lang Language, s string) string {
	switch s {
	case "partners":
		return Say(lang, PhraseReachPartners)
	case "nobody":
		return Say(lang, PhraseReachNobody)
	}
	return Say(lang, PhraseReachConsent)
}

func runConsent(ctx context.Context, r Reach, user event.UserURI, c Command, lang Language) (string, error) {
	sub := canonical(c.Args[0], consentSub)
	if sub == "" || (sub == "list") != (len(c.Args) == 1) {
		return Say(lang, PhraseHelpConsent), nil
	}
	if sub == "list" {
		v, err := r.Consent(ctx, user)
		if err != nil {
			return "", err
		}
		own := Say(lang, PhraseDefaultSetting)
		if v.Own {
			own = ""
		}
		lines := []string{Say(lang, PhraseConsentSetting, settingText(lang, v.Setting), own)}
		var acc, pend []string
		for _, u := range v.Accepted {
			acc = append(acc, Address(u))
		}
		for _, q := range v.Requests {
			if q.Target == user && q.State == "pending" {
				pend = append(pend, Address(q.Requester))
			}
		}
		if len(acc) > 0 {
			lines = append(lines, Say(lang, PhraseConsentAccepted, strings.Join(acc, ", ")))
		}
		if len(pend) > 0 {
			lines = append(lines, Say(lang, PhraseConsentPendingList, strings.Join(pend, ", ")))
		}
		return strings.Join(lines, "\n"), nil
	}
	other, err := ParseAddress(c.Args[1])
	if err != nil || other.Domain() == user.Domain() {
		return Say(lang, PhraseInviteAddress, truncateRunes(c.Args[1], 80)), nil
	}
	var phrase Phrase
	switch sub {
	case "allow":
		err, phrase = r.Allow(ctx, user, other), PhraseAllowed
	case "deny":
		err, phrase = r.Deny(ctx, user, other), PhraseDenied
	default:
		err, phrase = r.Revoke(ctx, user, other), PhraseRevoked
	}
	if err != nil {
		return "", fmt.Errorf("bridges: consent %s: %w", sub, err)
	}
	return Say(lang, phrase, Address(other)), nil
}

// ResolveStart finds whom "start ARG" means: a mimi:// URI as it is; otherwise the one person a
// search finds, else the address as written (an invite of someone who cannot be found waits
// for her consent like any other, so nothing tells whether she exists). answer is set when the
// command ends here (an unusable address, an ambiguous search, a non-partner).
func ResolveStart(ctx context.Context, r Reach, user event.UserURI, arg string, lang Language) (target event.UserURI, answer string) {
	addr, perr := ParseAddress(arg)
	if perr == nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(arg)), "mimi://") {
		return addr, ""
	}
	if r != nil {
		found, err := r.Search(ctx, user, arg)
		if err == nil && len(found) == 1 {
			return found[0].User, ""
		}
		if errors.Is(err, ErrSearchAmbiguous) || errors.Is(err, ErrNotPartner) || len(found) > 1 {
			if a, ok := searchAnswer(lang, arg, err); ok {
				return "", a
			}
			return "", Say(lang, PhraseSearchAmbiguous, arg)
		}
	}
	if perr != nil {
		return "", Say(lang, PhraseInviteAddress, truncateRunes(arg, 80))
	}
	return addr, ""
}

// ConsentRequestText words a NoticeConsentRequest for its recipient: who asks and the command
// that accepts (in lang).
func ConsentRequestText(lang Language, n *event.Notice) string {
	who := Address(n.Target)
	cmd := wordIn("consent", map[string]map[Language]string{"consent": {German: "einwilligung"}}, lang) + " " +
		wordIn("allow", consentSub, lang) + " " + who
	return Say(lang, PhraseConsentRequest, who, cmd)
}

// ReportCommand is the spec of report (an answer to the reported message; adapters whose
// messages can answer others offer it).
func ReportCommand() CommandSpec {
	return CommandSpec{Name: "report", Names: map[Language]string{German: "melden"}, MinArgs: 0, MaxArgs: maxCommandArgs, Help: PhraseHelpReport}
}

// RunReport sends user's report of the message messageID (nil: the command answered no
// message) in room and returns the answer.
func RunReport(ctx context.Context, r Reach, user event.UserURI, room event.RoomURI, messageID []byte, c Command, lang Language) (string, error) {
	switch {
	case r == nil:
		return Say(lang, PhraseReachUnavailable), nil
	case messageID == nil:
		return Say(lang, PhraseReportHow), nil
	}
	err := r.Report(ctx, user, room, messageID, strings.Join(c.Args, " "))
	switch {
	case errors.Is(err, ErrNotReportable):
		return Say(lang, PhraseNotReportable), nil
	case errors.Is(err, ErrReachUnavailable):
		return Say(lang, PhraseReachUnavailable), nil
	case err != nil:
		return "", err
	}
	return Say(lang, PhraseReported, string(room.Domain())), nil
}

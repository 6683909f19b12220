package console

import (
	"net/http"
	"strings"
)

// languages the console speaks; the first is the default.
var languages = []string{"en", "de"}

// messages are the console's texts by language and key. Every key exists in every language
// (TestMessagesComplete).
var messages = map[string]map[string]string{
	"en": {
		"title": "mimi-gateway console", "skip": "Skip to content", "nav": "Sections",
		"overview": "Overview", "partners": "Partners", "rooms": "Rooms", "keypackages": "KeyPackages",
		"deadletters": "Dead letters", "config": "Configuration", "audit": "Audit log",
		"signin": "Sign in", "signout": "Sign out", "signedin": "Signed in as", "role": "Role",
		"viewer": "viewer", "operator": "operator", "language": "Language",
		"username": "Account name", "password": "Password", "signin_local": "Sign in with the local account",
		"signin_oidc": "Sign in with your organisation's account", "login_failed": "Sign-in failed: wrong account name or password.",
		"login_throttled": "Too many failed sign-ins. Try again in", "login_group": "Your account is in none of the groups allowed to use the console.",
		"login_error": "Sign-in failed:", "csrf": "The form was too old or not sent from this console. Reload the page and try again.",
		"forbidden": "Your role may not do this.", "notfound": "Not found.",
		"readiness": "Readiness", "ready": "ready", "notready": "not ready", "state": "State", "check": "Check", "result": "Result",
		"ok": "OK", "failed": "failed", "rates": "Messages per minute", "rates_none": "Rates appear 15 seconds after start.",
		"metric": "Metric", "perminute": "per minute", "total": "total",
		"domain": "Domain", "endpoint": "Endpoint", "reachable": "Reachable", "unreachable": "unreachable", "unknown": "unknown",
		"lastsuccess": "Last success", "lasterror": "Last error", "checknow": "Check now", "checkresult": "Last check",
		"chain": "Certificate chain", "subject": "Subject", "issuer": "Issuer", "expires": "Expires", "expires_in": "days left",
		"expired": "expired", "owncert": "This gateway's certificate", "cafile": "Trusted CA (ca_file)", "systemroots": "system roots",
		"latency": "Latency", "status": "Status", "endpoints": "Endpoints", "nopartners": "No partners are configured.",
		"room": "Room", "hub": "Hub", "hosted": "hosted", "followed": "followed", "epoch": "Epoch", "members": "Members by provider",
		"banned": "Banned", "localclients": "Local clients", "norooms": "No rooms yet.", "backlog": "Outbox backlog",
		"follower": "Follower", "pending": "Pending", "oldest": "Oldest", "attempts": "Attempts", "laststatus": "Last status",
		"nobacklog": "Nothing is waiting for a partner.", "user": "User", "network": "Network", "available": "Available",
		"lastresort": "Last resort", "claimed": "Claimed", "nokeypackages": "No local users have KeyPackages yet.",
		"yes": "yes", "no": "no",
		"seq": "No.", "time": "Time", "reason": "Reason", "kind": "Kind", "origsubject": "Original subject",
		"deliveries": "Deliveries", "error": "Error", "size": "Size", "bytes": "bytes", "contentsize": "Content size",
		"nodeadletters": "No dead letters.", "replay": "Replay", "discard": "Discard", "show": "Show",
		"replayed": "Dead letter replayed: it was published again on its original subject.", "discarded": "Dead letter discarded.",
		"dlnote":   "Dead letters are shown by their metadata only; message content is never shown.",
		"envelope": "Envelope", "sender": "Sender", "consumer": "Consumer", "msgid": "Message ID", "decodeerror": "Not an envelope",
		"effective": "Running configuration (secrets redacted)", "edit": "Edit the configuration file", "file": "File",
		"editnote":  "Secret values are shown as the placeholder below; leave it in place to keep a secret unchanged.",
		"checkdiff": "Check and show changes", "apply": "Apply", "errors": "The configuration has errors; nothing was changed.",
		"line": "Line", "diff": "Changes", "nochange": "No changes.", "hotkeys": "Take effect at once",
		"restartkeys": "Need a restart (shown as such; the running gateway keeps the old values)",
		"applied":     "Configuration applied and reloaded.", "reloadfailed": "The file was written, but the reload failed:",
		"versions": "Earlier versions", "rollback": "Roll back to this version", "noversions": "No earlier versions kept yet.",
		"nofile":       "The gateway runs without a configuration file: start it with --config FILE to edit the configuration here.",
		"changedsince": "The configuration file changed since you started editing. Reload the page and edit again.",
		"readonly":     "You can read the configuration; changing it needs the operator role.",
		"actor":        "Who", "action": "What", "target": "Object", "outcome": "Outcome", "before": "Before", "after": "After",
		"noaudit": "No entries yet.", "older": "Older entries",
		"notavailable": "This view has no data source in this gateway.",
		"eventtime":    "Event time", "confirmdiscard": "Yes, discard this dead letter for good (it cannot be undone)",
		"needconfirm": "Tick the box to confirm that the dead letter is to be discarded for good.",
		"login":       "Sign in", "deadletter": "Dead letter", "message": "Notice", "continue": "Signed in",
	},
	"de": {
		"title": "mimi-gateway-Konsole", "skip": "Zum Inhalt springen", "nav": "Bereiche",
		"overview": "Übersicht", "partners": "Partner", "rooms": "Räume", "keypackages": "KeyPackages",
		"deadletters": "Unzustellbare Nachrichten", "config": "Konfiguration", "audit": "Protokoll",
		"signin": "Anmelden", "signout": "Abmelden", "signedin": "Angemeldet als", "role": "Rolle",
		"viewer": "Betrachter", "operator": "Betreiber", "language": "Sprache",
		"username": "Kontoname", "password": "Passwort", "signin_local": "Mit dem lokalen Konto anmelden",
		"signin_oidc": "Mit dem Konto Ihrer Organisation anmelden", "login_failed": "Anmeldung fehlgeschlagen: Kontoname oder Passwort falsch.",
		"login_throttled": "Zu viele fehlgeschlagene Anmeldungen. Erneut versuchen in", "login_group": "Ihr Konto gehört keiner Gruppe an, die die Konsole nutzen darf.",
		"login_error": "Anmeldung fehlgeschlagen:", "csrf": "Das Formular war zu alt oder kam nicht von dieser Konsole. Laden Sie die Seite neu und versuchen Sie es erneut.",
		"forbidden": "Ihre Rolle darf das nicht.", "notfound": "Nicht gefunden.",
		"readiness": "Bereitschaft", "ready": "bereit", "notready": "nicht bereit", "state": "Zustand", "check": "Prüfung", "result": "Ergebnis",
		"ok": "OK", "failed": "fehlgeschlagen", "rates": "Nachrichten pro Minute", "rates_none": "Raten erscheinen 15 Sekunden nach dem Start.",
		"metric": "Messgröße", "perminute": "pro Minute", "total": "gesamt",
		"domain": "Domain", "endpoint": "Endpunkt", "reachable": "Erreichbar", "unreachable": "nicht erreichbar", "unknown": "unbekannt",
		"lastsuccess": "Letzter Erfolg", "lasterror": "Letzter Fehler", "checknow": "Jetzt prüfen", "checkresult": "Letzte Prüfung",
		"chain": "Zertifikatskette", "subject": "Inhaber", "issuer": "Aussteller", "expires": "Läuft ab", "expires_in": "Tage übrig",
		"expired": "abgelaufen", "owncert": "Zertifikat dieses Gateways", "cafile": "Vertrauenswürdige CA (ca_file)", "systemroots": "System-Zertifikate",
		"latency": "Antwortzeit", "status": "Status", "endpoints": "Endpunkte", "nopartners": "Es sind keine Partner konfiguriert.",
		"room": "Raum", "hub": "Hub", "hosted": "gehostet", "followed": "gefolgt", "epoch": "Epoche", "members": "Mitglieder je Anbieter",
		"banned": "Gesperrt", "localclients": "Lokale Clients", "norooms": "Noch keine Räume.", "backlog": "Rückstau im Postausgang",
		"follower": "Follower", "pending": "Wartend", "oldest": "Älteste", "attempts": "Versuche", "laststatus": "Letzter Status",
		"nobacklog": "Nichts wartet auf einen Partner.", "user": "Nutzer", "network": "Netz", "available": "Verfügbar",
		"lastresort": "Letzte Reserve", "claimed": "Abgerufen", "nokeypackages": "Noch keine lokalen Nutzer mit KeyPackages.",
		"yes": "ja", "no": "nein",
		"seq": "Nr.", "time": "Zeit", "reason": "Grund", "kind": "Art", "origsubject": "Ursprüngliches Subject",
		"deliveries": "Zustellversuche", "error": "Fehler", "size": "Größe", "bytes": "Bytes", "contentsize": "Inhaltsgröße",
		"nodeadletters": "Keine unzustellbaren Nachrichten.", "replay": "Erneut senden", "discard": "Verwerfen", "show": "Anzeigen",
		"replayed": "Nachricht erneut gesendet: Sie wurde wieder auf ihrem ursprünglichen Subject veröffentlicht.", "discarded": "Nachricht verworfen.",
		"dlnote":   "Unzustellbare Nachrichten werden nur mit ihren Metadaten gezeigt, nie mit ihrem Inhalt.",
		"envelope": "Umschlag", "sender": "Absender", "consumer": "Consumer", "msgid": "Nachrichten-ID", "decodeerror": "Kein Umschlag",
		"effective": "Laufende Konfiguration (Geheimnisse geschwärzt)", "edit": "Konfigurationsdatei bearbeiten", "file": "Datei",
		"editnote":  "Geheime Werte erscheinen als der unten stehende Platzhalter; lassen Sie ihn stehen, bleibt das Geheimnis unverändert.",
		"checkdiff": "Prüfen und Änderungen zeigen", "apply": "Übernehmen", "errors": "Die Konfiguration hat Fehler; nichts wurde geändert.",
		"line": "Zeile", "diff": "Änderungen", "nochange": "Keine Änderungen.", "hotkeys": "Wirken sofort",
		"restartkeys": "Brauchen einen Neustart (als solche gezeigt; das laufende Gateway behält die alten Werte)",
		"applied":     "Konfiguration übernommen und neu geladen.", "reloadfailed": "Die Datei wurde geschrieben, aber das Neuladen schlug fehl:",
		"versions": "Frühere Fassungen", "rollback": "Auf diese Fassung zurücksetzen", "noversions": "Noch keine früheren Fassungen.",
		"nofile":       "Das Gateway läuft ohne Konfigurationsdatei: Starten Sie es mit --config DATEI, um die Konfiguration hier zu bearbeiten.",
		"changedsince": "Die Konfigurationsdatei wurde geändert, seit Sie mit dem Bearbeiten begonnen haben. Laden Sie die Seite neu und bearbeiten Sie sie erneut.",
		"readonly":     "Sie können die Konfiguration lesen; ändern darf sie nur die Rolle Betreiber.",
		"actor":        "Wer", "action": "Was", "target": "Objekt", "outcome": "Ergebnis", "before": "Vorher", "after": "Nachher",
		"noaudit": "Noch keine Einträge.", "older": "Ältere Einträge",
		"notavailable": "Für diese Ansicht hat dieses Gateway keine Datenquelle.",
		"eventtime":    "Zeit des Ereignisses", "confirmdiscard": "Ja, diese Nachricht endgültig verwerfen (das lässt sich nicht rückgängig machen)",
		"needconfirm": "Kreuzen Sie das Kästchen an, um das endgültige Verwerfen zu bestätigen.",
		"login":       "Anmelden", "deadletter": "Unzustellbare Nachricht", "message": "Hinweis", "continue": "Angemeldet",
	},
}

// language picks the request's language: ?lang=, then the cookie, then Accept-Language.
func language(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); isLanguage(l) {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
		return l
	}
	if ck, err := r.Cookie(langCookie); err == nil && isLanguage(ck.Value) {
		return ck.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if isLanguage(base) {
			return base
		}
	}
	return languages[0]
}

func isLanguage(l string) bool {
	for _, x := range languages {
		if x == l {
			return true
		}
	}
	return false
}

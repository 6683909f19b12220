package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/core/console"
)

// newSectionCommand is `admin <name>`: the console section at path of the running gateway
// (abuse reports, consent records) as a table, over its admin socket.
func newSectionCommand(o *adminOptions, name, path string) *cobra.Command {
	var lang string
	short := map[string]string{"reports": "List the abuse reports this gateway accepted as a room's hub (newest first)",
		"consent": "List users' reachability settings and consents"}[name]
	c := &cobra.Command{Use: name, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t console.Table
			if err := o.call(cmd.Context(), http.MethodGet, console.APISections+"/"+path+"?lang="+url.QueryEscape(lang), &t); err != nil {
				return err
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			out := cmd.OutOrStdout()
			if t.Note != "" {
				fmt.Fprintln(out, t.Note)
			}
			tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, strings.ToUpper(strings.Join(t.Columns, "\t")))
			for _, r := range t.Rows {
				cells := make([]string, len(r))
				for i, c := range r {
					cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
				}
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
			return tw.Flush()
		}}
	c.Flags().StringVar(&lang, "lang", "en", "language of the texts: en or de")
	return o.socketFlags(c)
}

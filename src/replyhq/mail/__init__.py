"""Every e-mail the product sends: templates in `templates/`, `service.send_mail` to queue one in
the caller's transaction, a job that delivers it over SMTP (retried), and for development a
local SMTP sink whose mails are printed and listed at /dev/mailbox."""

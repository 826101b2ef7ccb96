/* config.h — zestfs configuration files.
 *
 * A config file holds the mount's long options, one per line:
 *
 *     # comment
 *     endpoint = https://hub.example.org
 *     store = ~/.cache/zestfs
 *     store-size = 200G
 *     repo = org/name@main          (repeatable: every line adds one)
 *     offline = true                (a flag: true/yes/on sets it, false/no/off clears it)
 *
 * Files read, in order: /etc/zestfs/config, ~/.config/zestfs/config
 * ($XDG_CONFIG_HOME/zestfs/config when set), then $ZESTFS_CONFIG if set.
 * A missing system or user file is skipped; a missing $ZESTFS_CONFIG is an
 * error.  A later file overrides an earlier one's single-valued keys; the
 * command line overrides them all, because the config's options are inserted
 * before the command line's and the last occurrence of an option wins.
 *
 * Keys are option names ([a-z0-9][a-z0-9-]*); names this version does not
 * know are passed through as --KEY=VALUE so that options added later (listen,
 * peer, metrics, ...) work from a config file without touching this code.
 *
 * A `token` key is refused from a file that other users can read (mode & 004)
 * or write (mode & 002); the error names the file and line, never the value.
 * The token ends up only in the returned argv (heap memory), not in the
 * process's /proc/PID/cmdline. */
#ifndef ZESTFS_CONFIG_H
#define ZESTFS_CONFIG_H

#include <stddef.h>

/* Builds a new argv: argv[0], the options from the config files, then
 * argv[1..argc-1].  *out_argv is NULL-terminated; free it with
 * zf_config_free().  Returns 0, or a negative errno value with a message in
 * err (file:line: reason). */
int zf_config_argv(int argc, char **argv, int *out_argc, char ***out_argv, char *err,
                   size_t errlen);

/* The same with an explicit list of files; a NULL entry is skipped.  Files
 * whose `must_exist[i]` is 0 are skipped when absent.  (Used by
 * zf_config_argv and by the tests.) */
int zf_config_argv_files(int argc, char **argv, const char *const *paths,
                         const int *must_exist, int npaths, int *out_argc, char ***out_argv,
                         char *err, size_t errlen);

/* Frees what zf_config_argv returned (the strings it made and the array; the
 * caller's own argv strings are not touched).  Made strings are zeroed first
 * (they may hold a token).  NULL is fine. */
void zf_config_free(char **argv);

#endif

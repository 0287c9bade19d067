/* fuzz_config: the configuration loader (core/config*.c, core/yamlwalk.c,
 * the rules' parser route/rules_parse.c, budgets, health, cascades, the
 * classifier, keys...) on any YAML text.
 * Properties: a load either succeeds (and the summary prints) or fails with
 * an error that names the file, line and column; the value of an
 * environment variable the text refers to (a provider key) never appears
 * in an error or a warning. */
#include "fuzz.h"

#define SECRET "sk-fuzz-S3CRET-value-0123456789"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("FUZZ_KEY", SECRET, 1);
    setenv("OPENAI_API_KEY", SECRET, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[8192], warn[8192];
    err[0] = warn[0] = '\0';
    config_t *cfg = config_load_string("fuzz.yaml", (const char *)data, size, err, sizeof err,
                                       warn, sizeof warn);
    FUZZ_CHECK(memchr(err, '\0', sizeof err) && memchr(warn, '\0', sizeof warn), "unterminated");
    /* (unless the text itself holds those letters: the fuzzer learns them
     * from the comparison below and writes them into keys) */
    if (memmem(data, size, "S3CRET", 6) == NULL)
        FUZZ_CHECK(strstr(err, "S3CRET") == NULL && strstr(warn, "S3CRET") == NULL,
                   "a key's value in a message: %s %s", err, warn);
    if (cfg == NULL) {
        FUZZ_CHECK(strncmp(err, "fuzz.yaml", 9) == 0, "an error that does not name the file: %s", err);
    } else {
        FILE *f = fopen("/dev/null", "w");
        if (f != NULL) {
            config_print_summary(cfg, f);
            fclose(f);
        }
        config_unref(cfg);
    }
    return 0;
}

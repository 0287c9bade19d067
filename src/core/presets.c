/* presets: the table of built-in provider presets and the upstream URL of a
 * provider's request (see presets.h). To add a preset, add a row. */
#include "core/presets.h"

#include <stdio.h>
#include <string.h>

#define BEARER "Authorization", "Bearer"
#define OPENAI_TYPE PROVIDER_OPENAI

/* name, type, base_url, auth header + scheme, key variable, quirks,
 * per-model deployments, api-version */
static const preset_t table[] = {
    {"openai", OPENAI_TYPE, "https://api.openai.com/v1", BEARER, "OPENAI_API_KEY", 0, false, NULL},
    {"azure", OPENAI_TYPE, "https://{resource}.openai.azure.com/openai", "api-key", "",
     "AZURE_OPENAI_API_KEY", 0, true, "2024-10-21"},
    {"anthropic", PROVIDER_ANTHROPIC, "https://api.anthropic.com/v1", NULL, "",
     "ANTHROPIC_API_KEY", 0, false, NULL},
    {"gemini", OPENAI_TYPE, "https://generativelanguage.googleapis.com/v1beta/openai", BEARER,
     "GEMINI_API_KEY", QUIRK_TOOL_INDEX | QUIRK_ARRAY_ERRORS, false, NULL},
    {"deepseek", OPENAI_TYPE, "https://api.deepseek.com/v1", BEARER, "DEEPSEEK_API_KEY", 0, false,
     NULL},
    {"mistral", OPENAI_TYPE, "https://api.mistral.ai/v1", BEARER, "MISTRAL_API_KEY",
     QUIRK_FLAT_ERRORS | QUIRK_TOOL_ID9, false, NULL},
    {"groq", OPENAI_TYPE, "https://api.groq.com/openai/v1", BEARER, "GROQ_API_KEY",
     QUIRK_DROP_PARAMS, false, NULL},
    {"openrouter", OPENAI_TYPE, "https://openrouter.ai/api/v1", BEARER, "OPENROUTER_API_KEY", 0,
     false, NULL},
    {"together", OPENAI_TYPE, "https://api.together.xyz/v1", BEARER, "TOGETHER_API_KEY", 0, false,
     NULL},
    {"fireworks", OPENAI_TYPE, "https://api.fireworks.ai/inference/v1", BEARER,
     "FIREWORKS_API_KEY", 0, false, NULL},
    {"xai", OPENAI_TYPE, "https://api.x.ai/v1", BEARER, "XAI_API_KEY", 0, false, NULL},
    {"ollama", OPENAI_TYPE, "http://127.0.0.1:11434/v1", BEARER, NULL, 0, false, NULL},
    {"vllm", OPENAI_TYPE, "http://127.0.0.1:8000/v1", BEARER, NULL, 0, false, NULL},
    {"llamacpp", OPENAI_TYPE, "http://127.0.0.1:8080/v1", BEARER, NULL, 0, false, NULL},
};

static const struct {
    const char *name;
    unsigned bit;
} quirks[] = {
    {"tool_index", QUIRK_TOOL_INDEX}, {"array_errors", QUIRK_ARRAY_ERRORS},
    {"flat_errors", QUIRK_FLAT_ERRORS}, {"tool_id9", QUIRK_TOOL_ID9},
    {"drop_params", QUIRK_DROP_PARAMS},
};

const preset_t *presets_find(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

const char *presets_names(void)
{
    return "openai, azure, anthropic, gemini, deepseek, mistral, groq, openrouter, together, "
           "fireworks, xai, ollama, vllm, llamacpp";
}

unsigned presets_quirk(const char *name)
{
    for (size_t i = 0; i < sizeof quirks / sizeof quirks[0]; i++)
        if (strcmp(quirks[i].name, name) == 0)
            return quirks[i].bit;
    return 0;
}

int presets_encode(const char *s, char *out, size_t len, size_t *at)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;
        size_t need = plain ? 1 : 3;
        if (*at + need >= len)
            return -1;
        if (plain) {
            out[(*at)++] = (char)*p;
        } else {
            out[(*at)++] = '%';
            out[(*at)++] = hex[*p >> 4];
            out[(*at)++] = hex[*p & 15];
        }
    }
    out[*at] = '\0';
    return 0;
}

static int put(const char *s, char *out, size_t len, size_t *at)
{
    size_t n = strlen(s);
    if (*at + n >= len)
        return -1;
    memcpy(out + *at, s, n + 1);
    *at += n;
    return 0;
}

int presets_url(const cfg_provider_t *p, const cfg_model_t *m, const char *path, char *buf,
                size_t len)
{
    size_t at = 0;
    if (len == 0 || put(p->base_url, buf, len, &at) < 0)
        return -1;
    if (p->deployments && m != NULL) {
        const char *dep = m->deployment ? m->deployment : m->upstream;
        if (put("/deployments/", buf, len, &at) < 0 || presets_encode(dep, buf, len, &at) < 0)
            return -1;
    }
    if (put(path, buf, len, &at) < 0)
        return -1;
    if (p->query != NULL && p->query[0] != '\0' &&
        (put("?", buf, len, &at) < 0 || put(p->query, buf, len, &at) < 0))
        return -1;
    return 0;
}

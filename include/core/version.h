/* version: the release string, printed by --version and in logs. */
#ifndef LLMROUTER_VERSION_H
#define LLMROUTER_VERSION_H

#define LLMROUTER_VERSION "0.1.0"

#endif

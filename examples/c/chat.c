/* chat.c — a multi-turn chat REPL with Phi-4's chat template. One line of input is one user
 * turn; the conversation stays in the context between turns.
 *
 *   chat MODEL_DIR ["system message"]
 *
 * Build: cc chat.c -I include -L lib -lphi4 -Wl,-rpath,lib -o chat
 */
#include <phi4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t on_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [\"system message\"]\n", argv[0]);
        return 2;
    }
    phi4_model *model = NULL;
    phi4_context *ctx = NULL;
    if (phi4_model_load(argv[1], NULL, &model) != PHI4_OK || phi4_context_create(model, NULL, &ctx) != PHI4_OK) {
        fprintf(stderr, "%s\n", phi4_last_error());
        phi4_model_free(model);
        return 1;
    }
    const phi4_tokenizer *tok = phi4_model_tokenizer(model);
    int32_t im_end = -1;
    phi4_token_lookup(tok, "<|im_end|>", &im_end);
    phi4_generate_params params;
    phi4_generate_params_init(&params, sizeof params);
    params.max_tokens = 512;
    phi4_sampling_params sampling;
    phi4_sampling_params_init(&sampling, sizeof sampling);
    params.sampling = &sampling;
    sampling.temperature = 0.7f;

    char line[8192];
    int turn = 0;
    printf("> ");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) { printf("> "); fflush(stdout); continue; }
        phi4_chat_message messages[2];
        size_t n_messages = 0;
        if (turn == 0 && argc > 2) messages[n_messages++] = (phi4_chat_message){"system", argv[2]};
        messages[n_messages++] = (phi4_chat_message){"user", line};

        /* The prompt: after the first turn, close the assistant's previous reply first. */
        int32_t prompt[16384];
        size_t n = 0, used = 0;
        if (turn > 0 && im_end >= 0) prompt[used++] = im_end;
        if (phi4_chat_template(tok, messages, n_messages, 1, prompt + used, 16384 - used, &n) != PHI4_OK) {
            fprintf(stderr, "%s\n", phi4_last_error());
            break;
        }
        phi4_stop_reason reason;
        if (phi4_generate(ctx, prompt, used + n, &params, on_piece, NULL, &reason) != PHI4_OK) {
            fprintf(stderr, "\n%s\n", phi4_last_error());
            if (phi4_context_reset(ctx) != PHI4_OK) break;
            turn = 0;
        } else {
            turn++;
            if (reason == PHI4_STOP_CONTEXT_FULL) {
                printf("\n[context full: starting over]");
                phi4_context_reset(ctx);
                turn = 0;
            }
        }
        printf("\n> ");
        fflush(stdout);
    }
    printf("\n");
    phi4_context_free(ctx);
    phi4_model_free(model);
    return 0;
}

/* simple.c — load a Phi-4 model and stream a completion to stdout.
 *
 *   simple MODEL_DIR "prompt text" [max_tokens]
 *   simple MODEL_DIR --ids 1,2,3 [max_tokens]     (greedy; prints the generated ids)
 *
 * Build: cc simple.c -I include -L lib -lphi4 -Wl,-rpath,lib -o simple
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
    return 1; /* keep going */
}

/* Greedy decoding with the low-level calls: evaluate, sample, repeat; prints the ids. */
static phi4_status greedy_ids(phi4_model *model, phi4_context *ctx, const int32_t *prompt, size_t n, int max_tokens) {
    int32_t eog[16];
    size_t n_eog = 0;
    phi4_model_eog_tokens(model, eog, 16, &n_eog);
    phi4_sampling_params sp;
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.temperature = 0;
    phi4_sampler *sampler = NULL;
    phi4_status st = phi4_sampler_create(&sp, &sampler);
    if (st == PHI4_OK) st = phi4_eval(ctx, prompt, n, 0);
    for (int i = 0; st == PHI4_OK && i < max_tokens; i++) {
        int32_t token;
        st = phi4_sample(ctx, sampler, &token);
        if (st != PHI4_OK) break;
        for (size_t k = 0; k < n_eog; k++)
            if (token == eog[k]) i = max_tokens;
        if (i == max_tokens) break;
        printf("%s%d", i ? "," : "", token);
        if (phi4_context_token_count(ctx) == phi4_context_capacity(ctx)) break;
        st = phi4_eval(ctx, &token, 1, 0);
    }
    printf("\n");
    phi4_sampler_free(sampler);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR \"prompt\" [max_tokens] | MODEL_DIR --ids 1,2,3 [max_tokens]\n", argv[0]);
        return 2;
    }
    int use_ids = strcmp(argv[2], "--ids") == 0;
    if (use_ids && argc < 4) { fprintf(stderr, "--ids needs a list\n"); return 2; }
    int max_tokens = argc > (use_ids ? 4 : 3) ? atoi(argv[use_ids ? 4 : 3]) : 64;

    phi4_model *model = NULL;
    if (phi4_model_load(argv[1], NULL, &model) != PHI4_OK) {
        fprintf(stderr, "load failed: %s\n", phi4_last_error());
        return 1;
    }
    phi4_context *ctx = NULL;
    if (phi4_context_create(model, NULL, &ctx) != PHI4_OK) {
        fprintf(stderr, "context failed: %s\n", phi4_last_error());
        phi4_model_free(model);
        return 1;
    }
    phi4_generate_params params;
    phi4_generate_params_init(&params, sizeof params);
    params.max_tokens = max_tokens;
    phi4_stop_reason reason = PHI4_STOP_NONE;
    phi4_status st;
    if (use_ids) {
        int32_t ids[4096];
        size_t n = 0;
        for (char *s = strtok(argv[3], ","); s && n < 4096; s = strtok(NULL, ",")) ids[n++] = atoi(s);
        st = greedy_ids(model, ctx, ids, n, max_tokens);
    } else {
        st = phi4_generate_text(ctx, argv[2], &params, on_piece, NULL, &reason);
        printf("\n");
    }
    if (st != PHI4_OK) fprintf(stderr, "generate failed: %s\n", phi4_last_error());
    else if (!use_ids) fprintf(stderr, "stop reason: %d\n", reason);
    phi4_context_free(ctx);
    phi4_model_free(model);
    return st == PHI4_OK ? 0 : 1;
}

/* Test driver for the RR features of devices/firmware/src/jefw_beats.c (tests/test_firmware_monitor.py).
 *
 *   rr_driver HISTORY CLIP     lines `<n> <s1> ... <sn>` on stdin (beat samples, the beat last): prints
 *                              jefw_rr_features (no next beat; the last HISTORY + 1 beats, as the monitor passes)
 *                              and jefw_rr_spread_features (all of them) of the last beat, six values with %.17g.
 * Errors: one line on stderr, exit status 1 (2: bad command line). */
#include <stdio.h>
#include <stdlib.h>

#include "jefw.h"

int main(int argc, char **argv) {
    long n, k;
    long long beats[512];
    double rr[3], spread[3];
    int history;
    double clip;
    if (argc != 3) {
        fprintf(stderr, "usage: rr_driver HISTORY CLIP < lines\n");
        return 2;
    }
    history = atoi(argv[1]);
    clip = atof(argv[2]);
    while (scanf("%ld", &n) == 1) {
        if (n < 1 || n > 512) {
            fprintf(stderr, "rr_driver: %ld beats on a line (1..512)\n", n);
            return 1;
        }
        for (k = 0; k < n; k++)
            if (scanf("%lld", &beats[k]) != 1) {
                fprintf(stderr, "rr_driver: line ended after %ld of %ld beats\n", k, n);
                return 1;
            }
        k = n > history + 1 ? n - history - 1 : 0;
        jefw_rr_features(beats + k, n - k, NULL, clip, rr);
        jefw_rr_spread_features(beats, n, history, clip, spread);
        printf("%.17g %.17g %.17g %.17g %.17g %.17g\n", rr[0], rr[1], rr[2], spread[0], spread[1], spread[2]);
    }
    return 0;
}

/* Streaming defaults: the same numbers as devices/stream's QualityConfig and StreamConfig (tests/test_firmware.py
 * checks that they stay equal). Change them with the runner's command-line options, not here. */
#ifndef JEFW_CONFIG_H
#define JEFW_CONFIG_H

#define JEFW_QUALITY_FLAT_PTP_MV 0.01             /* a lead varying less than this over FLAT_S is flat (off) */
#define JEFW_QUALITY_FLAT_S 1.0
#define JEFW_QUALITY_SATURATION_MAX_FRACTION 0.01 /* more samples at an ADC rail than this fraction: flagged */
#define JEFW_QUALITY_NOISE_HF_MV 0.04             /* RMS of the second difference / sqrt(6) above this: noisy */
#define JEFW_QUALITY_NOISE_BAND_STD_MV 3.0        /* band-passed standard deviation above this: motion artefact */
#define JEFW_STREAM_HYSTERESIS 0.05               /* on above threshold + h, off below threshold - h ... */
#define JEFW_STREAM_ON_WINDOWS 2                  /* ... after this many consecutive classified windows agree */
#define JEFW_STREAM_OFF_WINDOWS 2
#define JEFW_STREAM_CHUNK 360                     /* frames per read from stdin */

#endif

/* A runner built against one bundle has no beat model beside it (see jefw_beat_model in jefw.h). */
#include "jefw.h"

const jefw_model_t *jefw_beat_model(void) { return NULL; }

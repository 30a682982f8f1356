// tfapi.h: the TensorFlow C API functions xcept uses, called through
// pointers resolved by dlopen/dlsym (see capi.go for why).
#ifndef XCEPT_TFAPI_H
#define XCEPT_TFAPI_H

#include <stdint.h>
#include <stdlib.h>
#include <tensorflow/c/c_api.h>
#include <tensorflow/c/tf_tstring.h>

// Every C API function xcept uses: return type, name, parameters, arguments.
#define XCEPT_TF_FUNCS(X) \
	X(const char*, TF_Version, (void), ()) \
	X(TF_Status*, TF_NewStatus, (void), ()) \
	X(void, TF_DeleteStatus, (TF_Status* s), (s)) \
	X(TF_Code, TF_GetCode, (const TF_Status* s), (s)) \
	X(const char*, TF_Message, (const TF_Status* s), (s)) \
	X(TF_Tensor*, TF_AllocateTensor, (TF_DataType t, const int64_t* dims, int n, size_t len), (t, dims, n, len)) \
	X(void, TF_DeleteTensor, (TF_Tensor* t), (t)) \
	X(void*, TF_TensorData, (const TF_Tensor* t), (t)) \
	X(size_t, TF_TensorByteSize, (const TF_Tensor* t), (t)) \
	X(TF_DataType, TF_TensorType, (const TF_Tensor* t), (t)) \
	X(int, TF_NumDims, (const TF_Tensor* t), (t)) \
	X(int64_t, TF_Dim, (const TF_Tensor* t, int i), (t, i)) \
	X(void, TF_StringInit, (TF_TString* s), (s)) \
	X(void, TF_StringCopy, (TF_TString* d, const char* s, size_t n), (d, s, n)) \
	X(const char*, TF_StringGetDataPointer, (const TF_TString* s), (s)) \
	X(size_t, TF_StringGetSize, (const TF_TString* s), (s)) \
	X(void, TF_StringDealloc, (TF_TString* s), (s)) \
	X(TF_Graph*, TF_NewGraph, (void), ()) \
	X(void, TF_DeleteGraph, (TF_Graph* g), (g)) \
	X(TF_Operation*, TF_GraphOperationByName, (TF_Graph* g, const char* n), (g, n)) \
	X(int, TF_OperationNumOutputs, (TF_Operation* o), (o)) \
	X(TF_DataType, TF_OperationOutputType, (TF_Output o), (o)) \
	X(TF_Buffer*, TF_NewBuffer, (void), ()) \
	X(void, TF_DeleteBuffer, (TF_Buffer* b), (b)) \
	X(TF_SessionOptions*, TF_NewSessionOptions, (void), ()) \
	X(void, TF_DeleteSessionOptions, (TF_SessionOptions* o), (o)) \
	X(void, TF_SetConfig, (TF_SessionOptions* o, const void* p, size_t n, TF_Status* s), (o, p, n, s)) \
	X(TF_Session*, TF_LoadSessionFromSavedModel, (const TF_SessionOptions* o, const TF_Buffer* r, const char* dir, const char* const* tags, int ntags, TF_Graph* g, TF_Buffer* mg, TF_Status* s), (o, r, dir, tags, ntags, g, mg, s)) \
	X(void, TF_SessionRun, (TF_Session* se, const TF_Buffer* ro, const TF_Output* in, TF_Tensor* const* iv, int ni, const TF_Output* out, TF_Tensor** ov, int no, const TF_Operation* const* tg, int nt, TF_Buffer* md, TF_Status* s), (se, ro, in, iv, ni, out, ov, no, tg, nt, md, s)) \
	X(void, TF_CloseSession, (TF_Session* se, TF_Status* s), (se, s)) \
	X(void, TF_DeleteSession, (TF_Session* se, TF_Status* s), (se, s)) \
	X(TF_Session*, TF_NewSession, (TF_Graph* g, const TF_SessionOptions* o, TF_Status* s), (g, o, s)) \
	X(TF_DeviceList*, TF_SessionListDevices, (TF_Session* se, TF_Status* s), (se, s)) \
	X(void, TF_DeleteDeviceList, (TF_DeviceList* l), (l)) \
	X(int, TF_DeviceListCount, (const TF_DeviceList* l), (l)) \
	X(const char*, TF_DeviceListName, (const TF_DeviceList* l, int i, TF_Status* s), (l, i, s)) \
	X(const char*, TF_DeviceListType, (const TF_DeviceList* l, int i, TF_Status* s), (l, i, s)) \
	X(int64_t, TF_DeviceListMemoryBytes, (const TF_DeviceList* l, int i, TF_Status* s), (l, i, s)) \
	X(void, TF_SetTarget, (TF_SessionOptions* o, const char* t), (o, t)) \
	X(TF_Server*, TF_NewServer, (const void* p, size_t n, TF_Status* s), (p, n, s)) \
	X(void, TF_ServerStart, (TF_Server* sv, TF_Status* s), (sv, s)) \
	X(const char*, TF_ServerTarget, (TF_Server* sv), (sv)) \
	X(void, TF_DeleteServer, (TF_Server* sv), (sv))

#define XCEPT_EXTERN(ret, name, params, args) ret x_##name params;
XCEPT_TF_FUNCS(XCEPT_EXTERN)

// xcept_tf_open loads the library at path (a file name or a bare soname) and
// resolves every function. quiet sends the library's load-time logs to
// /dev/null. It returns NULL, or an error message.
const char* xcept_tf_open(const char* path, int quiet);

// xcept_tf_path returns the file the C API was loaded from.
const char* xcept_tf_path(void);

#endif

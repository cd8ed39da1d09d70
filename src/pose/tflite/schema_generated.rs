pub use root::*;

const _: () = ::planus::check_version_compatibility("planus-1.3.0");

/// The root namespace
///
/// Generated from these locations:
/// * File `schema.fbs`
#[no_implicit_prelude]
#[allow(clippy::needless_lifetimes)]
mod root {
    /// The namespace `tflite`
    ///
    /// Generated from these locations:
    /// * File `schema.fbs`
    pub mod tflite {
        /// The enum `TensorType` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Enum `TensorType` in the file `schema.fbs:44`
        #[derive(
            Copy,
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[repr(i8)]
        pub enum TensorType {
            /// The variant `FLOAT32` in the enum `TensorType`
            Float32 = 0,

            /// The variant `FLOAT16` in the enum `TensorType`
            Float16 = 1,

            /// The variant `INT32` in the enum `TensorType`
            Int32 = 2,

            /// The variant `UINT8` in the enum `TensorType`
            Uint8 = 3,

            /// The variant `INT64` in the enum `TensorType`
            Int64 = 4,

            /// The variant `STRING` in the enum `TensorType`
            String = 5,

            /// The variant `BOOL` in the enum `TensorType`
            Bool = 6,

            /// The variant `INT16` in the enum `TensorType`
            Int16 = 7,

            /// The variant `COMPLEX64` in the enum `TensorType`
            Complex64 = 8,

            /// The variant `INT8` in the enum `TensorType`
            Int8 = 9,

            /// The variant `FLOAT64` in the enum `TensorType`
            Float64 = 10,

            /// The variant `COMPLEX128` in the enum `TensorType`
            Complex128 = 11,

            /// The variant `UINT64` in the enum `TensorType`
            Uint64 = 12,

            /// The variant `RESOURCE` in the enum `TensorType`
            Resource = 13,

            /// The variant `VARIANT` in the enum `TensorType`
            Variant = 14,

            /// The variant `UINT32` in the enum `TensorType`
            Uint32 = 15,

            /// The variant `UINT16` in the enum `TensorType`
            Uint16 = 16,

            /// The variant `INT4` in the enum `TensorType`
            Int4 = 17,
        }

        impl TensorType {
            /// Array containing all valid variants of TensorType
            pub const ENUM_VALUES: [Self; 18] = [
                Self::Float32,
                Self::Float16,
                Self::Int32,
                Self::Uint8,
                Self::Int64,
                Self::String,
                Self::Bool,
                Self::Int16,
                Self::Complex64,
                Self::Int8,
                Self::Float64,
                Self::Complex128,
                Self::Uint64,
                Self::Resource,
                Self::Variant,
                Self::Uint32,
                Self::Uint16,
                Self::Int4,
            ];
        }

        impl ::core::convert::TryFrom<i8> for TensorType {
            type Error = ::planus::errors::UnknownEnumTagKind;
            #[inline]
            fn try_from(
                value: i8,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTagKind> {
                #[allow(clippy::match_single_binding)]
                match value {
                    0 => ::core::result::Result::Ok(TensorType::Float32),
                    1 => ::core::result::Result::Ok(TensorType::Float16),
                    2 => ::core::result::Result::Ok(TensorType::Int32),
                    3 => ::core::result::Result::Ok(TensorType::Uint8),
                    4 => ::core::result::Result::Ok(TensorType::Int64),
                    5 => ::core::result::Result::Ok(TensorType::String),
                    6 => ::core::result::Result::Ok(TensorType::Bool),
                    7 => ::core::result::Result::Ok(TensorType::Int16),
                    8 => ::core::result::Result::Ok(TensorType::Complex64),
                    9 => ::core::result::Result::Ok(TensorType::Int8),
                    10 => ::core::result::Result::Ok(TensorType::Float64),
                    11 => ::core::result::Result::Ok(TensorType::Complex128),
                    12 => ::core::result::Result::Ok(TensorType::Uint64),
                    13 => ::core::result::Result::Ok(TensorType::Resource),
                    14 => ::core::result::Result::Ok(TensorType::Variant),
                    15 => ::core::result::Result::Ok(TensorType::Uint32),
                    16 => ::core::result::Result::Ok(TensorType::Uint16),
                    17 => ::core::result::Result::Ok(TensorType::Int4),

                    _ => ::core::result::Result::Err(::planus::errors::UnknownEnumTagKind {
                        tag: value as i128,
                    }),
                }
            }
        }

        impl ::core::convert::From<TensorType> for i8 {
            #[inline]
            fn from(value: TensorType) -> Self {
                value as i8
            }
        }

        /// # Safety
        /// The Planus compiler correctly calculates `ALIGNMENT` and `SIZE`.
        unsafe impl ::planus::Primitive for TensorType {
            const ALIGNMENT: usize = 1;
            const SIZE: usize = 1;
        }

        impl ::planus::WriteAsPrimitive<TensorType> for TensorType {
            #[inline]
            fn write<const N: usize>(&self, cursor: ::planus::Cursor<'_, N>, buffer_position: u32) {
                (*self as i8).write(cursor, buffer_position);
            }
        }

        impl ::planus::WriteAs<TensorType> for TensorType {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> TensorType {
                *self
            }
        }

        impl ::planus::WriteAsDefault<TensorType, TensorType> for TensorType {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
                default: &TensorType,
            ) -> ::core::option::Option<TensorType> {
                if self == default {
                    ::core::option::Option::None
                } else {
                    ::core::option::Option::Some(*self)
                }
            }
        }

        impl ::planus::WriteAsOptional<TensorType> for TensorType {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<TensorType> {
                ::core::option::Option::Some(*self)
            }
        }

        impl<'buf> ::planus::TableRead<'buf> for TensorType {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                let n: i8 = ::planus::TableRead::from_buffer(buffer, offset)?;
                ::core::result::Result::Ok(::core::convert::TryInto::try_into(n)?)
            }
        }

        impl<'buf> ::planus::VectorReadInner<'buf> for TensorType {
            type Error = ::planus::errors::UnknownEnumTag;
            const STRIDE: usize = 1;
            #[inline]
            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTag> {
                let value = unsafe { *buffer.buffer.get_unchecked(offset) as i8 };
                let value: ::core::result::Result<Self, _> =
                    ::core::convert::TryInto::try_into(value);
                value.map_err(|error_kind| {
                    error_kind.with_error_location(
                        "TensorType",
                        "VectorRead::from_buffer",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<TensorType> for TensorType {
            const STRIDE: usize = 1;

            type Value = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Self {
                *self
            }

            #[inline]
            unsafe fn write_values(
                values: &[Self],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 1];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - i as u32,
                    );
                }
            }
        }

        /// The enum `DimensionType` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Enum `DimensionType` in the file `schema.fbs:65`
        #[derive(
            Copy,
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[repr(i8)]
        pub enum DimensionType {
            /// The variant `DENSE` in the enum `DimensionType`
            Dense = 0,

            /// The variant `SPARSE_CSR` in the enum `DimensionType`
            SparseCsr = 1,
        }

        impl DimensionType {
            /// Array containing all valid variants of DimensionType
            pub const ENUM_VALUES: [Self; 2] = [Self::Dense, Self::SparseCsr];
        }

        impl ::core::convert::TryFrom<i8> for DimensionType {
            type Error = ::planus::errors::UnknownEnumTagKind;
            #[inline]
            fn try_from(
                value: i8,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTagKind> {
                #[allow(clippy::match_single_binding)]
                match value {
                    0 => ::core::result::Result::Ok(DimensionType::Dense),
                    1 => ::core::result::Result::Ok(DimensionType::SparseCsr),

                    _ => ::core::result::Result::Err(::planus::errors::UnknownEnumTagKind {
                        tag: value as i128,
                    }),
                }
            }
        }

        impl ::core::convert::From<DimensionType> for i8 {
            #[inline]
            fn from(value: DimensionType) -> Self {
                value as i8
            }
        }

        /// # Safety
        /// The Planus compiler correctly calculates `ALIGNMENT` and `SIZE`.
        unsafe impl ::planus::Primitive for DimensionType {
            const ALIGNMENT: usize = 1;
            const SIZE: usize = 1;
        }

        impl ::planus::WriteAsPrimitive<DimensionType> for DimensionType {
            #[inline]
            fn write<const N: usize>(&self, cursor: ::planus::Cursor<'_, N>, buffer_position: u32) {
                (*self as i8).write(cursor, buffer_position);
            }
        }

        impl ::planus::WriteAs<DimensionType> for DimensionType {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> DimensionType {
                *self
            }
        }

        impl ::planus::WriteAsDefault<DimensionType, DimensionType> for DimensionType {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
                default: &DimensionType,
            ) -> ::core::option::Option<DimensionType> {
                if self == default {
                    ::core::option::Option::None
                } else {
                    ::core::option::Option::Some(*self)
                }
            }
        }

        impl ::planus::WriteAsOptional<DimensionType> for DimensionType {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<DimensionType> {
                ::core::option::Option::Some(*self)
            }
        }

        impl<'buf> ::planus::TableRead<'buf> for DimensionType {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                let n: i8 = ::planus::TableRead::from_buffer(buffer, offset)?;
                ::core::result::Result::Ok(::core::convert::TryInto::try_into(n)?)
            }
        }

        impl<'buf> ::planus::VectorReadInner<'buf> for DimensionType {
            type Error = ::planus::errors::UnknownEnumTag;
            const STRIDE: usize = 1;
            #[inline]
            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTag> {
                let value = unsafe { *buffer.buffer.get_unchecked(offset) as i8 };
                let value: ::core::result::Result<Self, _> =
                    ::core::convert::TryInto::try_into(value);
                value.map_err(|error_kind| {
                    error_kind.with_error_location(
                        "DimensionType",
                        "VectorRead::from_buffer",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<DimensionType> for DimensionType {
            const STRIDE: usize = 1;

            type Value = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Self {
                *self
            }

            #[inline]
            unsafe fn write_values(
                values: &[Self],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 1];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - i as u32,
                    );
                }
            }
        }

        /// The table `Int32Vector` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Int32Vector` in the file `schema.fbs:70`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Int32Vector {
            /// The field `values` in the table `Int32Vector`
            pub values: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Int32Vector {
            fn default() -> Self {
                Self {
                    values: ::core::default::Default::default(),
                }
            }
        }

        impl Int32Vector {
            /// Creates a [Int32VectorBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> Int32VectorBuilder<()> {
                Int32VectorBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_values: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            ) -> ::planus::Offset<Self> {
                let prepared_values = field_values.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<6> =
                    ::core::default::Default::default();
                if prepared_values.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(0);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_values) = prepared_values {
                            object_writer.write::<_, _, 4>(&prepared_values);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Int32Vector>> for Int32Vector {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Int32Vector> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Int32Vector>> for Int32Vector {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Int32Vector>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Int32Vector> for Int32Vector {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Int32Vector> {
                Int32Vector::create(builder, &self.values)
            }
        }

        /// Builder for serializing an instance of the [Int32Vector] type.
        ///
        /// Can be created using the [Int32Vector::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct Int32VectorBuilder<State>(State);

        impl Int32VectorBuilder<()> {
            /// Setter for the [`values` field](Int32Vector#structfield.values).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn values<T0>(self, value: T0) -> Int32VectorBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                Int32VectorBuilder((value,))
            }

            /// Sets the [`values` field](Int32Vector#structfield.values) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn values_as_null(self) -> Int32VectorBuilder<((),)> {
                self.values(())
            }
        }

        impl<T0> Int32VectorBuilder<(T0,)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Int32Vector].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Int32Vector>
            where
                Self: ::planus::WriteAsOffset<Int32Vector>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>>
            ::planus::WriteAs<::planus::Offset<Int32Vector>> for Int32VectorBuilder<(T0,)>
        {
            type Prepared = ::planus::Offset<Int32Vector>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Int32Vector> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>>
            ::planus::WriteAsOptional<::planus::Offset<Int32Vector>> for Int32VectorBuilder<(T0,)>
        {
            type Prepared = ::planus::Offset<Int32Vector>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Int32Vector>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>>
            ::planus::WriteAsOffset<Int32Vector> for Int32VectorBuilder<(T0,)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Int32Vector> {
                let (v0,) = &self.0;
                Int32Vector::create(builder, v0)
            }
        }

        /// Reference to a deserialized [Int32Vector].
        #[derive(Copy, Clone)]
        pub struct Int32VectorRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> Int32VectorRef<'a> {
            /// Getter for the [`values` field](Int32Vector#structfield.values).
            #[inline]
            pub fn values(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(0, "Int32Vector", "values")
            }
        }

        impl<'a> ::core::fmt::Debug for Int32VectorRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("Int32VectorRef");
                if let ::core::option::Option::Some(field_values) = self.values().transpose() {
                    f.field("values", &field_values);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<Int32VectorRef<'a>> for Int32Vector {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: Int32VectorRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    values: if let ::core::option::Option::Some(values) = value.values()? {
                        ::core::option::Option::Some(values.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for Int32VectorRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for Int32VectorRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[Int32VectorRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Int32Vector>> for Int32Vector {
            type Value = ::planus::Offset<Int32Vector>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Int32Vector>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for Int32VectorRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[Int32VectorRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `Uint16Vector` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Uint16Vector` in the file `schema.fbs:74`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Uint16Vector {
            /// The field `values` in the table `Uint16Vector`
            pub values: ::core::option::Option<::planus::alloc::vec::Vec<u16>>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Uint16Vector {
            fn default() -> Self {
                Self {
                    values: ::core::default::Default::default(),
                }
            }
        }

        impl Uint16Vector {
            /// Creates a [Uint16VectorBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> Uint16VectorBuilder<()> {
                Uint16VectorBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_values: impl ::planus::WriteAsOptional<::planus::Offset<[u16]>>,
            ) -> ::planus::Offset<Self> {
                let prepared_values = field_values.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<6> =
                    ::core::default::Default::default();
                if prepared_values.is_some() {
                    table_writer.write_entry::<::planus::Offset<[u16]>>(0);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_values) = prepared_values {
                            object_writer.write::<_, _, 4>(&prepared_values);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Uint16Vector>> for Uint16Vector {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint16Vector> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Uint16Vector>> for Uint16Vector {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Uint16Vector>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Uint16Vector> for Uint16Vector {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint16Vector> {
                Uint16Vector::create(builder, &self.values)
            }
        }

        /// Builder for serializing an instance of the [Uint16Vector] type.
        ///
        /// Can be created using the [Uint16Vector::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct Uint16VectorBuilder<State>(State);

        impl Uint16VectorBuilder<()> {
            /// Setter for the [`values` field](Uint16Vector#structfield.values).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn values<T0>(self, value: T0) -> Uint16VectorBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[u16]>>,
            {
                Uint16VectorBuilder((value,))
            }

            /// Sets the [`values` field](Uint16Vector#structfield.values) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn values_as_null(self) -> Uint16VectorBuilder<((),)> {
                self.values(())
            }
        }

        impl<T0> Uint16VectorBuilder<(T0,)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Uint16Vector].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint16Vector>
            where
                Self: ::planus::WriteAsOffset<Uint16Vector>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[u16]>>>
            ::planus::WriteAs<::planus::Offset<Uint16Vector>> for Uint16VectorBuilder<(T0,)>
        {
            type Prepared = ::planus::Offset<Uint16Vector>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint16Vector> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[u16]>>>
            ::planus::WriteAsOptional<::planus::Offset<Uint16Vector>>
            for Uint16VectorBuilder<(T0,)>
        {
            type Prepared = ::planus::Offset<Uint16Vector>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Uint16Vector>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[u16]>>>
            ::planus::WriteAsOffset<Uint16Vector> for Uint16VectorBuilder<(T0,)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint16Vector> {
                let (v0,) = &self.0;
                Uint16Vector::create(builder, v0)
            }
        }

        /// Reference to a deserialized [Uint16Vector].
        #[derive(Copy, Clone)]
        pub struct Uint16VectorRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> Uint16VectorRef<'a> {
            /// Getter for the [`values` field](Uint16Vector#structfield.values).
            #[inline]
            pub fn values(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, u16>>> {
                self.0.access(0, "Uint16Vector", "values")
            }
        }

        impl<'a> ::core::fmt::Debug for Uint16VectorRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("Uint16VectorRef");
                if let ::core::option::Option::Some(field_values) = self.values().transpose() {
                    f.field("values", &field_values);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<Uint16VectorRef<'a>> for Uint16Vector {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: Uint16VectorRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    values: if let ::core::option::Option::Some(values) = value.values()? {
                        ::core::option::Option::Some(values.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for Uint16VectorRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for Uint16VectorRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[Uint16VectorRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Uint16Vector>> for Uint16Vector {
            type Value = ::planus::Offset<Uint16Vector>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Uint16Vector>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for Uint16VectorRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[Uint16VectorRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `Uint8Vector` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Uint8Vector` in the file `schema.fbs:78`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Uint8Vector {
            /// The field `values` in the table `Uint8Vector`
            pub values: ::core::option::Option<::planus::alloc::vec::Vec<u8>>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Uint8Vector {
            fn default() -> Self {
                Self {
                    values: ::core::default::Default::default(),
                }
            }
        }

        impl Uint8Vector {
            /// Creates a [Uint8VectorBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> Uint8VectorBuilder<()> {
                Uint8VectorBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_values: impl ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
            ) -> ::planus::Offset<Self> {
                let prepared_values = field_values.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<6> =
                    ::core::default::Default::default();
                if prepared_values.is_some() {
                    table_writer.write_entry::<::planus::Offset<[u8]>>(0);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_values) = prepared_values {
                            object_writer.write::<_, _, 4>(&prepared_values);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Uint8Vector>> for Uint8Vector {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint8Vector> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Uint8Vector>> for Uint8Vector {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Uint8Vector>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Uint8Vector> for Uint8Vector {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint8Vector> {
                Uint8Vector::create(builder, &self.values)
            }
        }

        /// Builder for serializing an instance of the [Uint8Vector] type.
        ///
        /// Can be created using the [Uint8Vector::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct Uint8VectorBuilder<State>(State);

        impl Uint8VectorBuilder<()> {
            /// Setter for the [`values` field](Uint8Vector#structfield.values).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn values<T0>(self, value: T0) -> Uint8VectorBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
            {
                Uint8VectorBuilder((value,))
            }

            /// Sets the [`values` field](Uint8Vector#structfield.values) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn values_as_null(self) -> Uint8VectorBuilder<((),)> {
                self.values(())
            }
        }

        impl<T0> Uint8VectorBuilder<(T0,)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Uint8Vector].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint8Vector>
            where
                Self: ::planus::WriteAsOffset<Uint8Vector>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>>
            ::planus::WriteAs<::planus::Offset<Uint8Vector>> for Uint8VectorBuilder<(T0,)>
        {
            type Prepared = ::planus::Offset<Uint8Vector>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint8Vector> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>>
            ::planus::WriteAsOptional<::planus::Offset<Uint8Vector>> for Uint8VectorBuilder<(T0,)>
        {
            type Prepared = ::planus::Offset<Uint8Vector>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Uint8Vector>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>>
            ::planus::WriteAsOffset<Uint8Vector> for Uint8VectorBuilder<(T0,)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Uint8Vector> {
                let (v0,) = &self.0;
                Uint8Vector::create(builder, v0)
            }
        }

        /// Reference to a deserialized [Uint8Vector].
        #[derive(Copy, Clone)]
        pub struct Uint8VectorRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> Uint8VectorRef<'a> {
            /// Getter for the [`values` field](Uint8Vector#structfield.values).
            #[inline]
            pub fn values(&self) -> ::planus::Result<::core::option::Option<&'a [u8]>> {
                self.0.access(0, "Uint8Vector", "values")
            }
        }

        impl<'a> ::core::fmt::Debug for Uint8VectorRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("Uint8VectorRef");
                if let ::core::option::Option::Some(field_values) = self.values().transpose() {
                    f.field("values", &field_values);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<Uint8VectorRef<'a>> for Uint8Vector {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: Uint8VectorRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    values: value.values()?.map(|v| v.to_vec()),
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for Uint8VectorRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for Uint8VectorRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[Uint8VectorRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Uint8Vector>> for Uint8Vector {
            type Value = ::planus::Offset<Uint8Vector>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Uint8Vector>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for Uint8VectorRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[Uint8VectorRef]", "read_as_root", 0)
                })
            }
        }

        /// The union `SparseIndexVector` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Union `SparseIndexVector` in the file `schema.fbs:82`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub enum SparseIndexVector {
            /// The variant of type `Int32Vector` in the union `SparseIndexVector`
            Int32Vector(::planus::alloc::boxed::Box<self::Int32Vector>),

            /// The variant of type `Uint16Vector` in the union `SparseIndexVector`
            Uint16Vector(::planus::alloc::boxed::Box<self::Uint16Vector>),

            /// The variant of type `Uint8Vector` in the union `SparseIndexVector`
            Uint8Vector(::planus::alloc::boxed::Box<self::Uint8Vector>),
        }

        impl SparseIndexVector {
            /// Creates a [SparseIndexVectorBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> SparseIndexVectorBuilder<::planus::Uninitialized> {
                SparseIndexVectorBuilder(::planus::Uninitialized)
            }

            #[inline]
            pub fn create_int32_vector(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Int32Vector>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(1, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_uint16_vector(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Uint16Vector>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(2, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_uint8_vector(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Uint8Vector>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(3, value.prepare(builder).downcast())
            }
        }

        impl ::planus::WriteAsUnion<SparseIndexVector> for SparseIndexVector {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::UnionOffset<Self> {
                match self {
                    Self::Int32Vector(value) => Self::create_int32_vector(builder, value),
                    Self::Uint16Vector(value) => Self::create_uint16_vector(builder, value),
                    Self::Uint8Vector(value) => Self::create_uint8_vector(builder, value),
                }
            }
        }

        impl ::planus::WriteAsOptionalUnion<SparseIndexVector> for SparseIndexVector {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<Self>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }

        /// Builder for serializing an instance of the [SparseIndexVector] type.
        ///
        /// Can be created using the [SparseIndexVector::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct SparseIndexVectorBuilder<T>(T);

        impl SparseIndexVectorBuilder<::planus::Uninitialized> {
            /// Creates an instance of the [`Int32Vector` variant](SparseIndexVector#variant.Int32Vector).
            #[inline]
            pub fn int32_vector<T>(
                self,
                value: T,
            ) -> SparseIndexVectorBuilder<::planus::Initialized<1, T>>
            where
                T: ::planus::WriteAsOffset<self::Int32Vector>,
            {
                SparseIndexVectorBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Uint16Vector` variant](SparseIndexVector#variant.Uint16Vector).
            #[inline]
            pub fn uint16_vector<T>(
                self,
                value: T,
            ) -> SparseIndexVectorBuilder<::planus::Initialized<2, T>>
            where
                T: ::planus::WriteAsOffset<self::Uint16Vector>,
            {
                SparseIndexVectorBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Uint8Vector` variant](SparseIndexVector#variant.Uint8Vector).
            #[inline]
            pub fn uint8_vector<T>(
                self,
                value: T,
            ) -> SparseIndexVectorBuilder<::planus::Initialized<3, T>>
            where
                T: ::planus::WriteAsOffset<self::Uint8Vector>,
            {
                SparseIndexVectorBuilder(::planus::Initialized(value))
            }
        }

        impl<const N: u8, T> SparseIndexVectorBuilder<::planus::Initialized<N, T>> {
            /// Finish writing the builder to get an [UnionOffset](::planus::UnionOffset) to a serialized [SparseIndexVector].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<SparseIndexVector>
            where
                Self: ::planus::WriteAsUnion<SparseIndexVector>,
            {
                ::planus::WriteAsUnion::prepare(&self, builder)
            }
        }

        impl<T> ::planus::WriteAsUnion<SparseIndexVector>
            for SparseIndexVectorBuilder<::planus::Initialized<1, T>>
        where
            T: ::planus::WriteAsOffset<self::Int32Vector>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<SparseIndexVector> {
                ::planus::UnionOffset::new(1, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<SparseIndexVector>
            for SparseIndexVectorBuilder<::planus::Initialized<1, T>>
        where
            T: ::planus::WriteAsOffset<self::Int32Vector>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<SparseIndexVector>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<SparseIndexVector>
            for SparseIndexVectorBuilder<::planus::Initialized<2, T>>
        where
            T: ::planus::WriteAsOffset<self::Uint16Vector>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<SparseIndexVector> {
                ::planus::UnionOffset::new(2, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<SparseIndexVector>
            for SparseIndexVectorBuilder<::planus::Initialized<2, T>>
        where
            T: ::planus::WriteAsOffset<self::Uint16Vector>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<SparseIndexVector>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<SparseIndexVector>
            for SparseIndexVectorBuilder<::planus::Initialized<3, T>>
        where
            T: ::planus::WriteAsOffset<self::Uint8Vector>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<SparseIndexVector> {
                ::planus::UnionOffset::new(3, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<SparseIndexVector>
            for SparseIndexVectorBuilder<::planus::Initialized<3, T>>
        where
            T: ::planus::WriteAsOffset<self::Uint8Vector>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<SparseIndexVector>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }

        /// Reference to a deserialized [SparseIndexVector].
        #[derive(Copy, Clone, Debug)]
        pub enum SparseIndexVectorRef<'a> {
            Int32Vector(self::Int32VectorRef<'a>),
            Uint16Vector(self::Uint16VectorRef<'a>),
            Uint8Vector(self::Uint8VectorRef<'a>),
        }

        impl<'a> ::core::convert::TryFrom<SparseIndexVectorRef<'a>> for SparseIndexVector {
            type Error = ::planus::Error;

            fn try_from(value: SparseIndexVectorRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(match value {
                    SparseIndexVectorRef::Int32Vector(value) => {
                        Self::Int32Vector(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    SparseIndexVectorRef::Uint16Vector(value) => {
                        Self::Uint16Vector(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    SparseIndexVectorRef::Uint8Vector(value) => {
                        Self::Uint8Vector(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }
                })
            }
        }

        impl<'a> ::planus::TableReadUnion<'a> for SparseIndexVectorRef<'a> {
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                tag: u8,
                field_offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                match tag {
                    1 => ::core::result::Result::Ok(Self::Int32Vector(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    2 => ::core::result::Result::Ok(Self::Uint16Vector(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    3 => ::core::result::Result::Ok(Self::Uint8Vector(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    _ => {
                        ::core::result::Result::Err(::planus::errors::ErrorKind::UnknownUnionTag {
                            tag,
                        })
                    }
                }
            }
        }

        impl<'a> ::planus::VectorReadUnion<'a> for SparseIndexVectorRef<'a> {
            const VECTOR_NAME: &'static str = "[SparseIndexVectorRef]";
        }

        /// The table `DimensionMetadata` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `DimensionMetadata` in the file `schema.fbs:88`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct DimensionMetadata {
            /// The field `format` in the table `DimensionMetadata`
            pub format: self::DimensionType,
            /// The field `dense_size` in the table `DimensionMetadata`
            pub dense_size: i32,
            /// The field `array_segments` in the table `DimensionMetadata`
            pub array_segments: ::core::option::Option<self::SparseIndexVector>,
            /// The field `array_indices` in the table `DimensionMetadata`
            pub array_indices: ::core::option::Option<self::SparseIndexVector>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for DimensionMetadata {
            fn default() -> Self {
                Self {
                    format: self::DimensionType::Dense,
                    dense_size: 0,
                    array_segments: ::core::default::Default::default(),
                    array_indices: ::core::default::Default::default(),
                }
            }
        }

        impl DimensionMetadata {
            /// Creates a [DimensionMetadataBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> DimensionMetadataBuilder<()> {
                DimensionMetadataBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_format: impl ::planus::WriteAsDefault<self::DimensionType, self::DimensionType>,
                field_dense_size: impl ::planus::WriteAsDefault<i32, i32>,
                field_array_segments: impl ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
                field_array_indices: impl ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
            ) -> ::planus::Offset<Self> {
                let prepared_format = field_format.prepare(builder, &self::DimensionType::Dense);
                let prepared_dense_size = field_dense_size.prepare(builder, &0);
                let prepared_array_segments = field_array_segments.prepare(builder);
                let prepared_array_indices = field_array_indices.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<16> =
                    ::core::default::Default::default();
                if prepared_dense_size.is_some() {
                    table_writer.write_entry::<i32>(1);
                }
                if prepared_array_segments.is_some() {
                    table_writer.write_entry::<::planus::Offset<self::SparseIndexVector>>(3);
                }
                if prepared_array_indices.is_some() {
                    table_writer.write_entry::<::planus::Offset<self::SparseIndexVector>>(5);
                }
                if prepared_format.is_some() {
                    table_writer.write_entry::<self::DimensionType>(0);
                }
                if prepared_array_segments.is_some() {
                    table_writer.write_entry::<u8>(2);
                }
                if prepared_array_indices.is_some() {
                    table_writer.write_entry::<u8>(4);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_dense_size) =
                            prepared_dense_size
                        {
                            object_writer.write::<_, _, 4>(&prepared_dense_size);
                        }
                        if let ::core::option::Option::Some(prepared_array_segments) =
                            prepared_array_segments
                        {
                            object_writer.write::<_, _, 4>(&prepared_array_segments.offset());
                        }
                        if let ::core::option::Option::Some(prepared_array_indices) =
                            prepared_array_indices
                        {
                            object_writer.write::<_, _, 4>(&prepared_array_indices.offset());
                        }
                        if let ::core::option::Option::Some(prepared_format) = prepared_format {
                            object_writer.write::<_, _, 1>(&prepared_format);
                        }
                        if let ::core::option::Option::Some(prepared_array_segments) =
                            prepared_array_segments
                        {
                            object_writer.write::<_, _, 1>(&prepared_array_segments.tag());
                        }
                        if let ::core::option::Option::Some(prepared_array_indices) =
                            prepared_array_indices
                        {
                            object_writer.write::<_, _, 1>(&prepared_array_indices.tag());
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<DimensionMetadata>> for DimensionMetadata {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DimensionMetadata> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<DimensionMetadata>> for DimensionMetadata {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<DimensionMetadata>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<DimensionMetadata> for DimensionMetadata {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DimensionMetadata> {
                DimensionMetadata::create(
                    builder,
                    self.format,
                    self.dense_size,
                    &self.array_segments,
                    &self.array_indices,
                )
            }
        }

        /// Builder for serializing an instance of the [DimensionMetadata] type.
        ///
        /// Can be created using the [DimensionMetadata::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct DimensionMetadataBuilder<State>(State);

        impl DimensionMetadataBuilder<()> {
            /// Setter for the [`format` field](DimensionMetadata#structfield.format).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn format<T0>(self, value: T0) -> DimensionMetadataBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<self::DimensionType, self::DimensionType>,
            {
                DimensionMetadataBuilder((value,))
            }

            /// Sets the [`format` field](DimensionMetadata#structfield.format) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn format_as_default(self) -> DimensionMetadataBuilder<(::planus::DefaultValue,)> {
                self.format(::planus::DefaultValue)
            }
        }

        impl<T0> DimensionMetadataBuilder<(T0,)> {
            /// Setter for the [`dense_size` field](DimensionMetadata#structfield.dense_size).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dense_size<T1>(self, value: T1) -> DimensionMetadataBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0,) = self.0;
                DimensionMetadataBuilder((v0, value))
            }

            /// Sets the [`dense_size` field](DimensionMetadata#structfield.dense_size) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dense_size_as_default(
                self,
            ) -> DimensionMetadataBuilder<(T0, ::planus::DefaultValue)> {
                self.dense_size(::planus::DefaultValue)
            }
        }

        impl<T0, T1> DimensionMetadataBuilder<(T0, T1)> {
            /// Setter for the [`array_segments` field](DimensionMetadata#structfield.array_segments).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn array_segments<T2>(self, value: T2) -> DimensionMetadataBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
            {
                let (v0, v1) = self.0;
                DimensionMetadataBuilder((v0, v1, value))
            }

            /// Sets the [`array_segments` field](DimensionMetadata#structfield.array_segments) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn array_segments_as_null(self) -> DimensionMetadataBuilder<(T0, T1, ())> {
                self.array_segments(())
            }
        }

        impl<T0, T1, T2> DimensionMetadataBuilder<(T0, T1, T2)> {
            /// Setter for the [`array_indices` field](DimensionMetadata#structfield.array_indices).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn array_indices<T3>(self, value: T3) -> DimensionMetadataBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
            {
                let (v0, v1, v2) = self.0;
                DimensionMetadataBuilder((v0, v1, v2, value))
            }

            /// Sets the [`array_indices` field](DimensionMetadata#structfield.array_indices) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn array_indices_as_null(self) -> DimensionMetadataBuilder<(T0, T1, T2, ())> {
                self.array_indices(())
            }
        }

        impl<T0, T1, T2, T3> DimensionMetadataBuilder<(T0, T1, T2, T3)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [DimensionMetadata].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DimensionMetadata>
            where
                Self: ::planus::WriteAsOffset<DimensionMetadata>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::DimensionType, self::DimensionType>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
                T3: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
            > ::planus::WriteAs<::planus::Offset<DimensionMetadata>>
            for DimensionMetadataBuilder<(T0, T1, T2, T3)>
        {
            type Prepared = ::planus::Offset<DimensionMetadata>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DimensionMetadata> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::DimensionType, self::DimensionType>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
                T3: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
            > ::planus::WriteAsOptional<::planus::Offset<DimensionMetadata>>
            for DimensionMetadataBuilder<(T0, T1, T2, T3)>
        {
            type Prepared = ::planus::Offset<DimensionMetadata>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<DimensionMetadata>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::DimensionType, self::DimensionType>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
                T3: ::planus::WriteAsOptionalUnion<self::SparseIndexVector>,
            > ::planus::WriteAsOffset<DimensionMetadata>
            for DimensionMetadataBuilder<(T0, T1, T2, T3)>
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DimensionMetadata> {
                let (v0, v1, v2, v3) = &self.0;
                DimensionMetadata::create(builder, v0, v1, v2, v3)
            }
        }

        /// Reference to a deserialized [DimensionMetadata].
        #[derive(Copy, Clone)]
        pub struct DimensionMetadataRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> DimensionMetadataRef<'a> {
            /// Getter for the [`format` field](DimensionMetadata#structfield.format).
            #[inline]
            pub fn format(&self) -> ::planus::Result<self::DimensionType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "DimensionMetadata", "format")?
                        .unwrap_or(self::DimensionType::Dense),
                )
            }

            /// Getter for the [`dense_size` field](DimensionMetadata#structfield.dense_size).
            #[inline]
            pub fn dense_size(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(1, "DimensionMetadata", "dense_size")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`array_segments` field](DimensionMetadata#structfield.array_segments).
            #[inline]
            pub fn array_segments(
                &self,
            ) -> ::planus::Result<::core::option::Option<self::SparseIndexVectorRef<'a>>>
            {
                self.0
                    .access_union(2, "DimensionMetadata", "array_segments")
            }

            /// Getter for the [`array_indices` field](DimensionMetadata#structfield.array_indices).
            #[inline]
            pub fn array_indices(
                &self,
            ) -> ::planus::Result<::core::option::Option<self::SparseIndexVectorRef<'a>>>
            {
                self.0.access_union(4, "DimensionMetadata", "array_indices")
            }
        }

        impl<'a> ::core::fmt::Debug for DimensionMetadataRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("DimensionMetadataRef");
                f.field("format", &self.format());
                f.field("dense_size", &self.dense_size());
                if let ::core::option::Option::Some(field_array_segments) =
                    self.array_segments().transpose()
                {
                    f.field("array_segments", &field_array_segments);
                }
                if let ::core::option::Option::Some(field_array_indices) =
                    self.array_indices().transpose()
                {
                    f.field("array_indices", &field_array_indices);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<DimensionMetadataRef<'a>> for DimensionMetadata {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: DimensionMetadataRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    format: ::core::convert::TryInto::try_into(value.format()?)?,
                    dense_size: ::core::convert::TryInto::try_into(value.dense_size()?)?,
                    array_segments: if let ::core::option::Option::Some(array_segments) =
                        value.array_segments()?
                    {
                        ::core::option::Option::Some(::core::convert::TryInto::try_into(
                            array_segments,
                        )?)
                    } else {
                        ::core::option::Option::None
                    },
                    array_indices: if let ::core::option::Option::Some(array_indices) =
                        value.array_indices()?
                    {
                        ::core::option::Option::Some(::core::convert::TryInto::try_into(
                            array_indices,
                        )?)
                    } else {
                        ::core::option::Option::None
                    },
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for DimensionMetadataRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for DimensionMetadataRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[DimensionMetadataRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<DimensionMetadata>> for DimensionMetadata {
            type Value = ::planus::Offset<DimensionMetadata>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<DimensionMetadata>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for DimensionMetadataRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[DimensionMetadataRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `SparsityParameters` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `SparsityParameters` in the file `schema.fbs:95`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct SparsityParameters {
            /// The field `traversal_order` in the table `SparsityParameters`
            pub traversal_order: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `block_map` in the table `SparsityParameters`
            pub block_map: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `dim_metadata` in the table `SparsityParameters`
            pub dim_metadata:
                ::core::option::Option<::planus::alloc::vec::Vec<self::DimensionMetadata>>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for SparsityParameters {
            fn default() -> Self {
                Self {
                    traversal_order: ::core::default::Default::default(),
                    block_map: ::core::default::Default::default(),
                    dim_metadata: ::core::default::Default::default(),
                }
            }
        }

        impl SparsityParameters {
            /// Creates a [SparsityParametersBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> SparsityParametersBuilder<()> {
                SparsityParametersBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_traversal_order: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_block_map: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_dim_metadata: impl ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::DimensionMetadata>]>,
                >,
            ) -> ::planus::Offset<Self> {
                let prepared_traversal_order = field_traversal_order.prepare(builder);
                let prepared_block_map = field_block_map.prepare(builder);
                let prepared_dim_metadata = field_dim_metadata.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<10> =
                    ::core::default::Default::default();
                if prepared_traversal_order.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(0);
                }
                if prepared_block_map.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(1);
                }
                if prepared_dim_metadata.is_some() {
                    table_writer.write_entry::<::planus::Offset<[::planus::Offset<self::DimensionMetadata>]>>(2);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_traversal_order) =
                            prepared_traversal_order
                        {
                            object_writer.write::<_, _, 4>(&prepared_traversal_order);
                        }
                        if let ::core::option::Option::Some(prepared_block_map) = prepared_block_map
                        {
                            object_writer.write::<_, _, 4>(&prepared_block_map);
                        }
                        if let ::core::option::Option::Some(prepared_dim_metadata) =
                            prepared_dim_metadata
                        {
                            object_writer.write::<_, _, 4>(&prepared_dim_metadata);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<SparsityParameters>> for SparsityParameters {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<SparsityParameters> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<SparsityParameters>> for SparsityParameters {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<SparsityParameters>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<SparsityParameters> for SparsityParameters {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<SparsityParameters> {
                SparsityParameters::create(
                    builder,
                    &self.traversal_order,
                    &self.block_map,
                    &self.dim_metadata,
                )
            }
        }

        /// Builder for serializing an instance of the [SparsityParameters] type.
        ///
        /// Can be created using the [SparsityParameters::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct SparsityParametersBuilder<State>(State);

        impl SparsityParametersBuilder<()> {
            /// Setter for the [`traversal_order` field](SparsityParameters#structfield.traversal_order).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn traversal_order<T0>(self, value: T0) -> SparsityParametersBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                SparsityParametersBuilder((value,))
            }

            /// Sets the [`traversal_order` field](SparsityParameters#structfield.traversal_order) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn traversal_order_as_null(self) -> SparsityParametersBuilder<((),)> {
                self.traversal_order(())
            }
        }

        impl<T0> SparsityParametersBuilder<(T0,)> {
            /// Setter for the [`block_map` field](SparsityParameters#structfield.block_map).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn block_map<T1>(self, value: T1) -> SparsityParametersBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0,) = self.0;
                SparsityParametersBuilder((v0, value))
            }

            /// Sets the [`block_map` field](SparsityParameters#structfield.block_map) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn block_map_as_null(self) -> SparsityParametersBuilder<(T0, ())> {
                self.block_map(())
            }
        }

        impl<T0, T1> SparsityParametersBuilder<(T0, T1)> {
            /// Setter for the [`dim_metadata` field](SparsityParameters#structfield.dim_metadata).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dim_metadata<T2>(self, value: T2) -> SparsityParametersBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::DimensionMetadata>]>,
                >,
            {
                let (v0, v1) = self.0;
                SparsityParametersBuilder((v0, v1, value))
            }

            /// Sets the [`dim_metadata` field](SparsityParameters#structfield.dim_metadata) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dim_metadata_as_null(self) -> SparsityParametersBuilder<(T0, T1, ())> {
                self.dim_metadata(())
            }
        }

        impl<T0, T1, T2> SparsityParametersBuilder<(T0, T1, T2)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [SparsityParameters].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<SparsityParameters>
            where
                Self: ::planus::WriteAsOffset<SparsityParameters>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::DimensionMetadata>]>,
                >,
            > ::planus::WriteAs<::planus::Offset<SparsityParameters>>
            for SparsityParametersBuilder<(T0, T1, T2)>
        {
            type Prepared = ::planus::Offset<SparsityParameters>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<SparsityParameters> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::DimensionMetadata>]>,
                >,
            > ::planus::WriteAsOptional<::planus::Offset<SparsityParameters>>
            for SparsityParametersBuilder<(T0, T1, T2)>
        {
            type Prepared = ::planus::Offset<SparsityParameters>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<SparsityParameters>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::DimensionMetadata>]>,
                >,
            > ::planus::WriteAsOffset<SparsityParameters>
            for SparsityParametersBuilder<(T0, T1, T2)>
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<SparsityParameters> {
                let (v0, v1, v2) = &self.0;
                SparsityParameters::create(builder, v0, v1, v2)
            }
        }

        /// Reference to a deserialized [SparsityParameters].
        #[derive(Copy, Clone)]
        pub struct SparsityParametersRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> SparsityParametersRef<'a> {
            /// Getter for the [`traversal_order` field](SparsityParameters#structfield.traversal_order).
            #[inline]
            pub fn traversal_order(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(0, "SparsityParameters", "traversal_order")
            }

            /// Getter for the [`block_map` field](SparsityParameters#structfield.block_map).
            #[inline]
            pub fn block_map(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(1, "SparsityParameters", "block_map")
            }

            /// Getter for the [`dim_metadata` field](SparsityParameters#structfield.dim_metadata).
            #[inline]
            pub fn dim_metadata(
                &self,
            ) -> ::planus::Result<
                ::core::option::Option<
                    ::planus::Vector<'a, ::planus::Result<self::DimensionMetadataRef<'a>>>,
                >,
            > {
                self.0.access(2, "SparsityParameters", "dim_metadata")
            }
        }

        impl<'a> ::core::fmt::Debug for SparsityParametersRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("SparsityParametersRef");
                if let ::core::option::Option::Some(field_traversal_order) =
                    self.traversal_order().transpose()
                {
                    f.field("traversal_order", &field_traversal_order);
                }
                if let ::core::option::Option::Some(field_block_map) = self.block_map().transpose()
                {
                    f.field("block_map", &field_block_map);
                }
                if let ::core::option::Option::Some(field_dim_metadata) =
                    self.dim_metadata().transpose()
                {
                    f.field("dim_metadata", &field_dim_metadata);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<SparsityParametersRef<'a>> for SparsityParameters {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: SparsityParametersRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    traversal_order: if let ::core::option::Option::Some(traversal_order) =
                        value.traversal_order()?
                    {
                        ::core::option::Option::Some(traversal_order.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    block_map: if let ::core::option::Option::Some(block_map) = value.block_map()? {
                        ::core::option::Option::Some(block_map.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    dim_metadata: if let ::core::option::Option::Some(dim_metadata) =
                        value.dim_metadata()?
                    {
                        ::core::option::Option::Some(dim_metadata.to_vec_result()?)
                    } else {
                        ::core::option::Option::None
                    },
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for SparsityParametersRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for SparsityParametersRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[SparsityParametersRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<SparsityParameters>> for SparsityParameters {
            type Value = ::planus::Offset<SparsityParameters>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<SparsityParameters>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for SparsityParametersRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[SparsityParametersRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `Tensor` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Tensor` in the file `schema.fbs:101`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Tensor {
            /// The field `shape` in the table `Tensor`
            pub shape: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `type` in the table `Tensor`
            pub type_: self::TensorType,
            /// The field `buffer` in the table `Tensor`
            pub buffer: u32,
            /// The field `name` in the table `Tensor`
            pub name: ::core::option::Option<::planus::alloc::string::String>,
            /// The field `quantization` in the table `Tensor`
            pub quantization: ::core::option::Option<::planus::alloc::boxed::Box<self::Unused>>,
            /// The field `is_variable` in the table `Tensor`
            pub is_variable: bool,
            /// The field `sparsity` in the table `Tensor`
            pub sparsity:
                ::core::option::Option<::planus::alloc::boxed::Box<self::SparsityParameters>>,
            /// The field `shape_signature` in the table `Tensor`
            pub shape_signature: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `has_rank` in the table `Tensor`
            pub has_rank: bool,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Tensor {
            fn default() -> Self {
                Self {
                    shape: ::core::default::Default::default(),
                    type_: self::TensorType::Float32,
                    buffer: 0,
                    name: ::core::default::Default::default(),
                    quantization: ::core::default::Default::default(),
                    is_variable: false,
                    sparsity: ::core::default::Default::default(),
                    shape_signature: ::core::default::Default::default(),
                    has_rank: false,
                }
            }
        }

        impl Tensor {
            /// Creates a [TensorBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> TensorBuilder<()> {
                TensorBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_shape: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_type_: impl ::planus::WriteAsDefault<self::TensorType, self::TensorType>,
                field_buffer: impl ::planus::WriteAsDefault<u32, u32>,
                field_name: impl ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                field_quantization: impl ::planus::WriteAsOptional<::planus::Offset<self::Unused>>,
                field_is_variable: impl ::planus::WriteAsDefault<bool, bool>,
                field_sparsity: impl ::planus::WriteAsOptional<
                    ::planus::Offset<self::SparsityParameters>,
                >,
                field_shape_signature: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_has_rank: impl ::planus::WriteAsDefault<bool, bool>,
            ) -> ::planus::Offset<Self> {
                let prepared_shape = field_shape.prepare(builder);
                let prepared_type_ = field_type_.prepare(builder, &self::TensorType::Float32);
                let prepared_buffer = field_buffer.prepare(builder, &0);
                let prepared_name = field_name.prepare(builder);
                let prepared_quantization = field_quantization.prepare(builder);
                let prepared_is_variable = field_is_variable.prepare(builder, &false);
                let prepared_sparsity = field_sparsity.prepare(builder);
                let prepared_shape_signature = field_shape_signature.prepare(builder);
                let prepared_has_rank = field_has_rank.prepare(builder, &false);

                let mut table_writer: ::planus::table_writer::TableWriter<22> =
                    ::core::default::Default::default();
                if prepared_shape.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(0);
                }
                if prepared_buffer.is_some() {
                    table_writer.write_entry::<u32>(2);
                }
                if prepared_name.is_some() {
                    table_writer.write_entry::<::planus::Offset<str>>(3);
                }
                if prepared_quantization.is_some() {
                    table_writer.write_entry::<::planus::Offset<self::Unused>>(4);
                }
                if prepared_sparsity.is_some() {
                    table_writer.write_entry::<::planus::Offset<self::SparsityParameters>>(6);
                }
                if prepared_shape_signature.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(7);
                }
                if prepared_type_.is_some() {
                    table_writer.write_entry::<self::TensorType>(1);
                }
                if prepared_is_variable.is_some() {
                    table_writer.write_entry::<bool>(5);
                }
                if prepared_has_rank.is_some() {
                    table_writer.write_entry::<bool>(8);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_shape) = prepared_shape {
                            object_writer.write::<_, _, 4>(&prepared_shape);
                        }
                        if let ::core::option::Option::Some(prepared_buffer) = prepared_buffer {
                            object_writer.write::<_, _, 4>(&prepared_buffer);
                        }
                        if let ::core::option::Option::Some(prepared_name) = prepared_name {
                            object_writer.write::<_, _, 4>(&prepared_name);
                        }
                        if let ::core::option::Option::Some(prepared_quantization) =
                            prepared_quantization
                        {
                            object_writer.write::<_, _, 4>(&prepared_quantization);
                        }
                        if let ::core::option::Option::Some(prepared_sparsity) = prepared_sparsity {
                            object_writer.write::<_, _, 4>(&prepared_sparsity);
                        }
                        if let ::core::option::Option::Some(prepared_shape_signature) =
                            prepared_shape_signature
                        {
                            object_writer.write::<_, _, 4>(&prepared_shape_signature);
                        }
                        if let ::core::option::Option::Some(prepared_type_) = prepared_type_ {
                            object_writer.write::<_, _, 1>(&prepared_type_);
                        }
                        if let ::core::option::Option::Some(prepared_is_variable) =
                            prepared_is_variable
                        {
                            object_writer.write::<_, _, 1>(&prepared_is_variable);
                        }
                        if let ::core::option::Option::Some(prepared_has_rank) = prepared_has_rank {
                            object_writer.write::<_, _, 1>(&prepared_has_rank);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Tensor>> for Tensor {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Tensor> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Tensor>> for Tensor {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Tensor>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Tensor> for Tensor {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Tensor> {
                Tensor::create(
                    builder,
                    &self.shape,
                    self.type_,
                    self.buffer,
                    &self.name,
                    &self.quantization,
                    self.is_variable,
                    &self.sparsity,
                    &self.shape_signature,
                    self.has_rank,
                )
            }
        }

        /// Builder for serializing an instance of the [Tensor] type.
        ///
        /// Can be created using the [Tensor::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct TensorBuilder<State>(State);

        impl TensorBuilder<()> {
            /// Setter for the [`shape` field](Tensor#structfield.shape).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn shape<T0>(self, value: T0) -> TensorBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                TensorBuilder((value,))
            }

            /// Sets the [`shape` field](Tensor#structfield.shape) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn shape_as_null(self) -> TensorBuilder<((),)> {
                self.shape(())
            }
        }

        impl<T0> TensorBuilder<(T0,)> {
            /// Setter for the [`type` field](Tensor#structfield.type_).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn type_<T1>(self, value: T1) -> TensorBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<self::TensorType, self::TensorType>,
            {
                let (v0,) = self.0;
                TensorBuilder((v0, value))
            }

            /// Sets the [`type` field](Tensor#structfield.type_) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn type_as_default(self) -> TensorBuilder<(T0, ::planus::DefaultValue)> {
                self.type_(::planus::DefaultValue)
            }
        }

        impl<T0, T1> TensorBuilder<(T0, T1)> {
            /// Setter for the [`buffer` field](Tensor#structfield.buffer).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn buffer<T2>(self, value: T2) -> TensorBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsDefault<u32, u32>,
            {
                let (v0, v1) = self.0;
                TensorBuilder((v0, v1, value))
            }

            /// Sets the [`buffer` field](Tensor#structfield.buffer) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn buffer_as_default(self) -> TensorBuilder<(T0, T1, ::planus::DefaultValue)> {
                self.buffer(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2> TensorBuilder<(T0, T1, T2)> {
            /// Setter for the [`name` field](Tensor#structfield.name).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn name<T3>(self, value: T3) -> TensorBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            {
                let (v0, v1, v2) = self.0;
                TensorBuilder((v0, v1, v2, value))
            }

            /// Sets the [`name` field](Tensor#structfield.name) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn name_as_null(self) -> TensorBuilder<(T0, T1, T2, ())> {
                self.name(())
            }
        }

        impl<T0, T1, T2, T3> TensorBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`quantization` field](Tensor#structfield.quantization).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn quantization<T4>(self, value: T4) -> TensorBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsOptional<::planus::Offset<self::Unused>>,
            {
                let (v0, v1, v2, v3) = self.0;
                TensorBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`quantization` field](Tensor#structfield.quantization) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn quantization_as_null(self) -> TensorBuilder<(T0, T1, T2, T3, ())> {
                self.quantization(())
            }
        }

        impl<T0, T1, T2, T3, T4> TensorBuilder<(T0, T1, T2, T3, T4)> {
            /// Setter for the [`is_variable` field](Tensor#structfield.is_variable).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn is_variable<T5>(self, value: T5) -> TensorBuilder<(T0, T1, T2, T3, T4, T5)>
            where
                T5: ::planus::WriteAsDefault<bool, bool>,
            {
                let (v0, v1, v2, v3, v4) = self.0;
                TensorBuilder((v0, v1, v2, v3, v4, value))
            }

            /// Sets the [`is_variable` field](Tensor#structfield.is_variable) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn is_variable_as_default(
                self,
            ) -> TensorBuilder<(T0, T1, T2, T3, T4, ::planus::DefaultValue)> {
                self.is_variable(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5> TensorBuilder<(T0, T1, T2, T3, T4, T5)> {
            /// Setter for the [`sparsity` field](Tensor#structfield.sparsity).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn sparsity<T6>(self, value: T6) -> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6)>
            where
                T6: ::planus::WriteAsOptional<::planus::Offset<self::SparsityParameters>>,
            {
                let (v0, v1, v2, v3, v4, v5) = self.0;
                TensorBuilder((v0, v1, v2, v3, v4, v5, value))
            }

            /// Sets the [`sparsity` field](Tensor#structfield.sparsity) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn sparsity_as_null(self) -> TensorBuilder<(T0, T1, T2, T3, T4, T5, ())> {
                self.sparsity(())
            }
        }

        impl<T0, T1, T2, T3, T4, T5, T6> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6)> {
            /// Setter for the [`shape_signature` field](Tensor#structfield.shape_signature).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn shape_signature<T7>(
                self,
                value: T7,
            ) -> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)>
            where
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0, v1, v2, v3, v4, v5, v6) = self.0;
                TensorBuilder((v0, v1, v2, v3, v4, v5, v6, value))
            }

            /// Sets the [`shape_signature` field](Tensor#structfield.shape_signature) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn shape_signature_as_null(
                self,
            ) -> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, ())> {
                self.shape_signature(())
            }
        }

        impl<T0, T1, T2, T3, T4, T5, T6, T7> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)> {
            /// Setter for the [`has_rank` field](Tensor#structfield.has_rank).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn has_rank<T8>(
                self,
                value: T8,
            ) -> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7, T8)>
            where
                T8: ::planus::WriteAsDefault<bool, bool>,
            {
                let (v0, v1, v2, v3, v4, v5, v6, v7) = self.0;
                TensorBuilder((v0, v1, v2, v3, v4, v5, v6, v7, value))
            }

            /// Sets the [`has_rank` field](Tensor#structfield.has_rank) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn has_rank_as_default(
                self,
            ) -> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7, ::planus::DefaultValue)>
            {
                self.has_rank(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5, T6, T7, T8> TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7, T8)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Tensor].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Tensor>
            where
                Self: ::planus::WriteAsOffset<Tensor>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T1: ::planus::WriteAsDefault<self::TensorType, self::TensorType>,
                T2: ::planus::WriteAsDefault<u32, u32>,
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<self::Unused>>,
                T5: ::planus::WriteAsDefault<bool, bool>,
                T6: ::planus::WriteAsOptional<::planus::Offset<self::SparsityParameters>>,
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T8: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAs<::planus::Offset<Tensor>>
            for TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7, T8)>
        {
            type Prepared = ::planus::Offset<Tensor>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Tensor> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T1: ::planus::WriteAsDefault<self::TensorType, self::TensorType>,
                T2: ::planus::WriteAsDefault<u32, u32>,
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<self::Unused>>,
                T5: ::planus::WriteAsDefault<bool, bool>,
                T6: ::planus::WriteAsOptional<::planus::Offset<self::SparsityParameters>>,
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T8: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAsOptional<::planus::Offset<Tensor>>
            for TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7, T8)>
        {
            type Prepared = ::planus::Offset<Tensor>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Tensor>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T1: ::planus::WriteAsDefault<self::TensorType, self::TensorType>,
                T2: ::planus::WriteAsDefault<u32, u32>,
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<self::Unused>>,
                T5: ::planus::WriteAsDefault<bool, bool>,
                T6: ::planus::WriteAsOptional<::planus::Offset<self::SparsityParameters>>,
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T8: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAsOffset<Tensor>
            for TensorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7, T8)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Tensor> {
                let (v0, v1, v2, v3, v4, v5, v6, v7, v8) = &self.0;
                Tensor::create(builder, v0, v1, v2, v3, v4, v5, v6, v7, v8)
            }
        }

        /// Reference to a deserialized [Tensor].
        #[derive(Copy, Clone)]
        pub struct TensorRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> TensorRef<'a> {
            /// Getter for the [`shape` field](Tensor#structfield.shape).
            #[inline]
            pub fn shape(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(0, "Tensor", "shape")
            }

            /// Getter for the [`type` field](Tensor#structfield.type_).
            #[inline]
            pub fn type_(&self) -> ::planus::Result<self::TensorType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(1, "Tensor", "type_")?
                        .unwrap_or(self::TensorType::Float32),
                )
            }

            /// Getter for the [`buffer` field](Tensor#structfield.buffer).
            #[inline]
            pub fn buffer(&self) -> ::planus::Result<u32> {
                ::core::result::Result::Ok(self.0.access(2, "Tensor", "buffer")?.unwrap_or(0))
            }

            /// Getter for the [`name` field](Tensor#structfield.name).
            #[inline]
            pub fn name(
                &self,
            ) -> ::planus::Result<::core::option::Option<&'a ::core::primitive::str>> {
                self.0.access(3, "Tensor", "name")
            }

            /// Getter for the [`quantization` field](Tensor#structfield.quantization).
            #[inline]
            pub fn quantization(
                &self,
            ) -> ::planus::Result<::core::option::Option<self::UnusedRef<'a>>> {
                self.0.access(4, "Tensor", "quantization")
            }

            /// Getter for the [`is_variable` field](Tensor#structfield.is_variable).
            #[inline]
            pub fn is_variable(&self) -> ::planus::Result<bool> {
                ::core::result::Result::Ok(
                    self.0.access(5, "Tensor", "is_variable")?.unwrap_or(false),
                )
            }

            /// Getter for the [`sparsity` field](Tensor#structfield.sparsity).
            #[inline]
            pub fn sparsity(
                &self,
            ) -> ::planus::Result<::core::option::Option<self::SparsityParametersRef<'a>>>
            {
                self.0.access(6, "Tensor", "sparsity")
            }

            /// Getter for the [`shape_signature` field](Tensor#structfield.shape_signature).
            #[inline]
            pub fn shape_signature(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(7, "Tensor", "shape_signature")
            }

            /// Getter for the [`has_rank` field](Tensor#structfield.has_rank).
            #[inline]
            pub fn has_rank(&self) -> ::planus::Result<bool> {
                ::core::result::Result::Ok(self.0.access(8, "Tensor", "has_rank")?.unwrap_or(false))
            }
        }

        impl<'a> ::core::fmt::Debug for TensorRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("TensorRef");
                if let ::core::option::Option::Some(field_shape) = self.shape().transpose() {
                    f.field("shape", &field_shape);
                }
                f.field("type_", &self.type_());
                f.field("buffer", &self.buffer());
                if let ::core::option::Option::Some(field_name) = self.name().transpose() {
                    f.field("name", &field_name);
                }
                if let ::core::option::Option::Some(field_quantization) =
                    self.quantization().transpose()
                {
                    f.field("quantization", &field_quantization);
                }
                f.field("is_variable", &self.is_variable());
                if let ::core::option::Option::Some(field_sparsity) = self.sparsity().transpose() {
                    f.field("sparsity", &field_sparsity);
                }
                if let ::core::option::Option::Some(field_shape_signature) =
                    self.shape_signature().transpose()
                {
                    f.field("shape_signature", &field_shape_signature);
                }
                f.field("has_rank", &self.has_rank());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<TensorRef<'a>> for Tensor {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: TensorRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    shape: if let ::core::option::Option::Some(shape) = value.shape()? {
                        ::core::option::Option::Some(shape.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    type_: ::core::convert::TryInto::try_into(value.type_()?)?,
                    buffer: ::core::convert::TryInto::try_into(value.buffer()?)?,
                    name: value.name()?.map(::core::convert::Into::into),
                    quantization: if let ::core::option::Option::Some(quantization) =
                        value.quantization()?
                    {
                        ::core::option::Option::Some(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryInto::try_into(quantization)?,
                        ))
                    } else {
                        ::core::option::Option::None
                    },
                    is_variable: ::core::convert::TryInto::try_into(value.is_variable()?)?,
                    sparsity: if let ::core::option::Option::Some(sparsity) = value.sparsity()? {
                        ::core::option::Option::Some(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryInto::try_into(sparsity)?,
                        ))
                    } else {
                        ::core::option::Option::None
                    },
                    shape_signature: if let ::core::option::Option::Some(shape_signature) =
                        value.shape_signature()?
                    {
                        ::core::option::Option::Some(shape_signature.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    has_rank: ::core::convert::TryInto::try_into(value.has_rank()?)?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for TensorRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for TensorRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location("[TensorRef]", "get", buffer.offset_from_start)
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Tensor>> for Tensor {
            type Value = ::planus::Offset<Tensor>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Tensor>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for TensorRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[TensorRef]", "read_as_root", 0)
                })
            }
        }

        /// The enum `BuiltinOperator` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Enum `BuiltinOperator` in the file `schema.fbs:113`
        #[derive(
            Copy,
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[repr(i32)]
        pub enum BuiltinOperator {
            /// The variant `ADD` in the enum `BuiltinOperator`
            Add = 0,

            /// The variant `AVERAGE_POOL_2D` in the enum `BuiltinOperator`
            AveragePool2d = 1,

            /// The variant `CONCATENATION` in the enum `BuiltinOperator`
            Concatenation = 2,

            /// The variant `CONV_2D` in the enum `BuiltinOperator`
            Conv2d = 3,

            /// The variant `DEPTHWISE_CONV_2D` in the enum `BuiltinOperator`
            DepthwiseConv2d = 4,

            /// The variant `DEPTH_TO_SPACE` in the enum `BuiltinOperator`
            DepthToSpace = 5,

            /// The variant `DEQUANTIZE` in the enum `BuiltinOperator`
            Dequantize = 6,

            /// The variant `EMBEDDING_LOOKUP` in the enum `BuiltinOperator`
            EmbeddingLookup = 7,

            /// The variant `FLOOR` in the enum `BuiltinOperator`
            Floor = 8,

            /// The variant `FULLY_CONNECTED` in the enum `BuiltinOperator`
            FullyConnected = 9,

            /// The variant `HASHTABLE_LOOKUP` in the enum `BuiltinOperator`
            HashtableLookup = 10,

            /// The variant `L2_NORMALIZATION` in the enum `BuiltinOperator`
            L2Normalization = 11,

            /// The variant `L2_POOL_2D` in the enum `BuiltinOperator`
            L2Pool2d = 12,

            /// The variant `LOCAL_RESPONSE_NORMALIZATION` in the enum `BuiltinOperator`
            LocalResponseNormalization = 13,

            /// The variant `LOGISTIC` in the enum `BuiltinOperator`
            Logistic = 14,

            /// The variant `LSH_PROJECTION` in the enum `BuiltinOperator`
            LshProjection = 15,

            /// The variant `LSTM` in the enum `BuiltinOperator`
            Lstm = 16,

            /// The variant `MAX_POOL_2D` in the enum `BuiltinOperator`
            MaxPool2d = 17,

            /// The variant `MUL` in the enum `BuiltinOperator`
            Mul = 18,

            /// The variant `RELU` in the enum `BuiltinOperator`
            Relu = 19,

            /// The variant `RELU_N1_TO_1` in the enum `BuiltinOperator`
            ReluN1To1 = 20,

            /// The variant `RELU6` in the enum `BuiltinOperator`
            Relu6 = 21,

            /// The variant `RESHAPE` in the enum `BuiltinOperator`
            Reshape = 22,

            /// The variant `RESIZE_BILINEAR` in the enum `BuiltinOperator`
            ResizeBilinear = 23,

            /// The variant `RNN` in the enum `BuiltinOperator`
            Rnn = 24,

            /// The variant `SOFTMAX` in the enum `BuiltinOperator`
            Softmax = 25,

            /// The variant `SPACE_TO_DEPTH` in the enum `BuiltinOperator`
            SpaceToDepth = 26,

            /// The variant `SVDF` in the enum `BuiltinOperator`
            Svdf = 27,

            /// The variant `TANH` in the enum `BuiltinOperator`
            Tanh = 28,

            /// The variant `CONCAT_EMBEDDINGS` in the enum `BuiltinOperator`
            ConcatEmbeddings = 29,

            /// The variant `SKIP_GRAM` in the enum `BuiltinOperator`
            SkipGram = 30,

            /// The variant `CALL` in the enum `BuiltinOperator`
            Call = 31,

            /// The variant `CUSTOM` in the enum `BuiltinOperator`
            Custom = 32,

            /// The variant `EMBEDDING_LOOKUP_SPARSE` in the enum `BuiltinOperator`
            EmbeddingLookupSparse = 33,

            /// The variant `PAD` in the enum `BuiltinOperator`
            Pad = 34,

            /// The variant `UNIDIRECTIONAL_SEQUENCE_RNN` in the enum `BuiltinOperator`
            UnidirectionalSequenceRnn = 35,

            /// The variant `GATHER` in the enum `BuiltinOperator`
            Gather = 36,

            /// The variant `BATCH_TO_SPACE_ND` in the enum `BuiltinOperator`
            BatchToSpaceNd = 37,

            /// The variant `SPACE_TO_BATCH_ND` in the enum `BuiltinOperator`
            SpaceToBatchNd = 38,

            /// The variant `TRANSPOSE` in the enum `BuiltinOperator`
            Transpose = 39,

            /// The variant `MEAN` in the enum `BuiltinOperator`
            Mean = 40,

            /// The variant `SUB` in the enum `BuiltinOperator`
            Sub = 41,

            /// The variant `DIV` in the enum `BuiltinOperator`
            Div = 42,

            /// The variant `SQUEEZE` in the enum `BuiltinOperator`
            Squeeze = 43,

            /// The variant `UNIDIRECTIONAL_SEQUENCE_LSTM` in the enum `BuiltinOperator`
            UnidirectionalSequenceLstm = 44,

            /// The variant `STRIDED_SLICE` in the enum `BuiltinOperator`
            StridedSlice = 45,

            /// The variant `BIDIRECTIONAL_SEQUENCE_RNN` in the enum `BuiltinOperator`
            BidirectionalSequenceRnn = 46,

            /// The variant `EXP` in the enum `BuiltinOperator`
            Exp = 47,

            /// The variant `TOPK_V2` in the enum `BuiltinOperator`
            TopkV2 = 48,

            /// The variant `SPLIT` in the enum `BuiltinOperator`
            Split = 49,

            /// The variant `LOG_SOFTMAX` in the enum `BuiltinOperator`
            LogSoftmax = 50,

            /// The variant `DELEGATE` in the enum `BuiltinOperator`
            Delegate = 51,

            /// The variant `BIDIRECTIONAL_SEQUENCE_LSTM` in the enum `BuiltinOperator`
            BidirectionalSequenceLstm = 52,

            /// The variant `CAST` in the enum `BuiltinOperator`
            Cast = 53,

            /// The variant `PRELU` in the enum `BuiltinOperator`
            Prelu = 54,

            /// The variant `MAXIMUM` in the enum `BuiltinOperator`
            Maximum = 55,

            /// The variant `ARG_MAX` in the enum `BuiltinOperator`
            ArgMax = 56,

            /// The variant `MINIMUM` in the enum `BuiltinOperator`
            Minimum = 57,

            /// The variant `LESS` in the enum `BuiltinOperator`
            Less = 58,

            /// The variant `NEG` in the enum `BuiltinOperator`
            Neg = 59,

            /// The variant `PADV2` in the enum `BuiltinOperator`
            Padv2 = 60,

            /// The variant `GREATER` in the enum `BuiltinOperator`
            Greater = 61,

            /// The variant `GREATER_EQUAL` in the enum `BuiltinOperator`
            GreaterEqual = 62,

            /// The variant `LESS_EQUAL` in the enum `BuiltinOperator`
            LessEqual = 63,

            /// The variant `SELECT` in the enum `BuiltinOperator`
            Select = 64,

            /// The variant `SLICE` in the enum `BuiltinOperator`
            Slice = 65,

            /// The variant `SIN` in the enum `BuiltinOperator`
            Sin = 66,

            /// The variant `TRANSPOSE_CONV` in the enum `BuiltinOperator`
            TransposeConv = 67,

            /// The variant `SPARSE_TO_DENSE` in the enum `BuiltinOperator`
            SparseToDense = 68,

            /// The variant `TILE` in the enum `BuiltinOperator`
            Tile = 69,

            /// The variant `EXPAND_DIMS` in the enum `BuiltinOperator`
            ExpandDims = 70,

            /// The variant `EQUAL` in the enum `BuiltinOperator`
            Equal = 71,

            /// The variant `NOT_EQUAL` in the enum `BuiltinOperator`
            NotEqual = 72,

            /// The variant `LOG` in the enum `BuiltinOperator`
            Log = 73,

            /// The variant `SUM` in the enum `BuiltinOperator`
            Sum = 74,

            /// The variant `SQRT` in the enum `BuiltinOperator`
            Sqrt = 75,

            /// The variant `RSQRT` in the enum `BuiltinOperator`
            Rsqrt = 76,

            /// The variant `SHAPE` in the enum `BuiltinOperator`
            Shape = 77,

            /// The variant `POW` in the enum `BuiltinOperator`
            Pow = 78,

            /// The variant `ARG_MIN` in the enum `BuiltinOperator`
            ArgMin = 79,

            /// The variant `FAKE_QUANT` in the enum `BuiltinOperator`
            FakeQuant = 80,

            /// The variant `REDUCE_PROD` in the enum `BuiltinOperator`
            ReduceProd = 81,

            /// The variant `REDUCE_MAX` in the enum `BuiltinOperator`
            ReduceMax = 82,

            /// The variant `PACK` in the enum `BuiltinOperator`
            Pack = 83,

            /// The variant `LOGICAL_OR` in the enum `BuiltinOperator`
            LogicalOr = 84,

            /// The variant `ONE_HOT` in the enum `BuiltinOperator`
            OneHot = 85,

            /// The variant `LOGICAL_AND` in the enum `BuiltinOperator`
            LogicalAnd = 86,

            /// The variant `LOGICAL_NOT` in the enum `BuiltinOperator`
            LogicalNot = 87,

            /// The variant `UNPACK` in the enum `BuiltinOperator`
            Unpack = 88,

            /// The variant `REDUCE_MIN` in the enum `BuiltinOperator`
            ReduceMin = 89,

            /// The variant `FLOOR_DIV` in the enum `BuiltinOperator`
            FloorDiv = 90,

            /// The variant `REDUCE_ANY` in the enum `BuiltinOperator`
            ReduceAny = 91,

            /// The variant `SQUARE` in the enum `BuiltinOperator`
            Square = 92,

            /// The variant `ZEROS_LIKE` in the enum `BuiltinOperator`
            ZerosLike = 93,

            /// The variant `FILL` in the enum `BuiltinOperator`
            Fill = 94,

            /// The variant `FLOOR_MOD` in the enum `BuiltinOperator`
            FloorMod = 95,

            /// The variant `RANGE` in the enum `BuiltinOperator`
            Range = 96,

            /// The variant `RESIZE_NEAREST_NEIGHBOR` in the enum `BuiltinOperator`
            ResizeNearestNeighbor = 97,

            /// The variant `LEAKY_RELU` in the enum `BuiltinOperator`
            LeakyRelu = 98,

            /// The variant `SQUARED_DIFFERENCE` in the enum `BuiltinOperator`
            SquaredDifference = 99,

            /// The variant `MIRROR_PAD` in the enum `BuiltinOperator`
            MirrorPad = 100,

            /// The variant `ABS` in the enum `BuiltinOperator`
            Abs = 101,

            /// The variant `SPLIT_V` in the enum `BuiltinOperator`
            SplitV = 102,

            /// The variant `UNIQUE` in the enum `BuiltinOperator`
            Unique = 103,

            /// The variant `CEIL` in the enum `BuiltinOperator`
            Ceil = 104,

            /// The variant `REVERSE_V2` in the enum `BuiltinOperator`
            ReverseV2 = 105,

            /// The variant `ADD_N` in the enum `BuiltinOperator`
            AddN = 106,

            /// The variant `GATHER_ND` in the enum `BuiltinOperator`
            GatherNd = 107,

            /// The variant `COS` in the enum `BuiltinOperator`
            Cos = 108,

            /// The variant `WHERE` in the enum `BuiltinOperator`
            Where = 109,

            /// The variant `RANK` in the enum `BuiltinOperator`
            Rank = 110,

            /// The variant `ELU` in the enum `BuiltinOperator`
            Elu = 111,

            /// The variant `REVERSE_SEQUENCE` in the enum `BuiltinOperator`
            ReverseSequence = 112,

            /// The variant `MATRIX_DIAG` in the enum `BuiltinOperator`
            MatrixDiag = 113,

            /// The variant `QUANTIZE` in the enum `BuiltinOperator`
            Quantize = 114,

            /// The variant `MATRIX_SET_DIAG` in the enum `BuiltinOperator`
            MatrixSetDiag = 115,

            /// The variant `ROUND` in the enum `BuiltinOperator`
            Round = 116,

            /// The variant `HARD_SWISH` in the enum `BuiltinOperator`
            HardSwish = 117,

            /// The variant `IF` in the enum `BuiltinOperator`
            If = 118,

            /// The variant `WHILE` in the enum `BuiltinOperator`
            While = 119,

            /// The variant `NON_MAX_SUPPRESSION_V4` in the enum `BuiltinOperator`
            NonMaxSuppressionV4 = 120,

            /// The variant `NON_MAX_SUPPRESSION_V5` in the enum `BuiltinOperator`
            NonMaxSuppressionV5 = 121,

            /// The variant `SCATTER_ND` in the enum `BuiltinOperator`
            ScatterNd = 122,

            /// The variant `SELECT_V2` in the enum `BuiltinOperator`
            SelectV2 = 123,

            /// The variant `DENSIFY` in the enum `BuiltinOperator`
            Densify = 124,

            /// The variant `SEGMENT_SUM` in the enum `BuiltinOperator`
            SegmentSum = 125,

            /// The variant `BATCH_MATMUL` in the enum `BuiltinOperator`
            BatchMatmul = 126,

            /// The variant `PLACEHOLDER_FOR_GREATER_OP_CODES` in the enum `BuiltinOperator`
            PlaceholderForGreaterOpCodes = 127,

            /// The variant `CUMSUM` in the enum `BuiltinOperator`
            Cumsum = 128,

            /// The variant `CALL_ONCE` in the enum `BuiltinOperator`
            CallOnce = 129,

            /// The variant `BROADCAST_TO` in the enum `BuiltinOperator`
            BroadcastTo = 130,

            /// The variant `RFFT2D` in the enum `BuiltinOperator`
            Rfft2d = 131,

            /// The variant `CONV_3D` in the enum `BuiltinOperator`
            Conv3d = 132,

            /// The variant `IMAG` in the enum `BuiltinOperator`
            Imag = 133,

            /// The variant `REAL` in the enum `BuiltinOperator`
            Real = 134,

            /// The variant `COMPLEX_ABS` in the enum `BuiltinOperator`
            ComplexAbs = 135,

            /// The variant `HASHTABLE` in the enum `BuiltinOperator`
            Hashtable = 136,

            /// The variant `HASHTABLE_FIND` in the enum `BuiltinOperator`
            HashtableFind = 137,

            /// The variant `HASHTABLE_IMPORT` in the enum `BuiltinOperator`
            HashtableImport = 138,

            /// The variant `HASHTABLE_SIZE` in the enum `BuiltinOperator`
            HashtableSize = 139,

            /// The variant `REDUCE_ALL` in the enum `BuiltinOperator`
            ReduceAll = 140,

            /// The variant `CONV_3D_TRANSPOSE` in the enum `BuiltinOperator`
            Conv3dTranspose = 141,

            /// The variant `VAR_HANDLE` in the enum `BuiltinOperator`
            VarHandle = 142,

            /// The variant `READ_VARIABLE` in the enum `BuiltinOperator`
            ReadVariable = 143,

            /// The variant `ASSIGN_VARIABLE` in the enum `BuiltinOperator`
            AssignVariable = 144,

            /// The variant `BROADCAST_ARGS` in the enum `BuiltinOperator`
            BroadcastArgs = 145,

            /// The variant `RANDOM_STANDARD_NORMAL` in the enum `BuiltinOperator`
            RandomStandardNormal = 146,

            /// The variant `BUCKETIZE` in the enum `BuiltinOperator`
            Bucketize = 147,

            /// The variant `RANDOM_UNIFORM` in the enum `BuiltinOperator`
            RandomUniform = 148,

            /// The variant `MULTINOMIAL` in the enum `BuiltinOperator`
            Multinomial = 149,

            /// The variant `GELU` in the enum `BuiltinOperator`
            Gelu = 150,

            /// The variant `DYNAMIC_UPDATE_SLICE` in the enum `BuiltinOperator`
            DynamicUpdateSlice = 151,

            /// The variant `RELU_0_TO_1` in the enum `BuiltinOperator`
            Relu0To1 = 152,

            /// The variant `UNSORTED_SEGMENT_PROD` in the enum `BuiltinOperator`
            UnsortedSegmentProd = 153,

            /// The variant `UNSORTED_SEGMENT_MAX` in the enum `BuiltinOperator`
            UnsortedSegmentMax = 154,

            /// The variant `UNSORTED_SEGMENT_SUM` in the enum `BuiltinOperator`
            UnsortedSegmentSum = 155,

            /// The variant `ATAN2` in the enum `BuiltinOperator`
            Atan2 = 156,

            /// The variant `UNSORTED_SEGMENT_MIN` in the enum `BuiltinOperator`
            UnsortedSegmentMin = 157,

            /// The variant `SIGN` in the enum `BuiltinOperator`
            Sign = 158,

            /// The variant `BITCAST` in the enum `BuiltinOperator`
            Bitcast = 159,

            /// The variant `BITWISE_XOR` in the enum `BuiltinOperator`
            BitwiseXor = 160,

            /// The variant `RIGHT_SHIFT` in the enum `BuiltinOperator`
            RightShift = 161,
        }

        impl BuiltinOperator {
            /// Array containing all valid variants of BuiltinOperator
            pub const ENUM_VALUES: [Self; 162] = [
                Self::Add,
                Self::AveragePool2d,
                Self::Concatenation,
                Self::Conv2d,
                Self::DepthwiseConv2d,
                Self::DepthToSpace,
                Self::Dequantize,
                Self::EmbeddingLookup,
                Self::Floor,
                Self::FullyConnected,
                Self::HashtableLookup,
                Self::L2Normalization,
                Self::L2Pool2d,
                Self::LocalResponseNormalization,
                Self::Logistic,
                Self::LshProjection,
                Self::Lstm,
                Self::MaxPool2d,
                Self::Mul,
                Self::Relu,
                Self::ReluN1To1,
                Self::Relu6,
                Self::Reshape,
                Self::ResizeBilinear,
                Self::Rnn,
                Self::Softmax,
                Self::SpaceToDepth,
                Self::Svdf,
                Self::Tanh,
                Self::ConcatEmbeddings,
                Self::SkipGram,
                Self::Call,
                Self::Custom,
                Self::EmbeddingLookupSparse,
                Self::Pad,
                Self::UnidirectionalSequenceRnn,
                Self::Gather,
                Self::BatchToSpaceNd,
                Self::SpaceToBatchNd,
                Self::Transpose,
                Self::Mean,
                Self::Sub,
                Self::Div,
                Self::Squeeze,
                Self::UnidirectionalSequenceLstm,
                Self::StridedSlice,
                Self::BidirectionalSequenceRnn,
                Self::Exp,
                Self::TopkV2,
                Self::Split,
                Self::LogSoftmax,
                Self::Delegate,
                Self::BidirectionalSequenceLstm,
                Self::Cast,
                Self::Prelu,
                Self::Maximum,
                Self::ArgMax,
                Self::Minimum,
                Self::Less,
                Self::Neg,
                Self::Padv2,
                Self::Greater,
                Self::GreaterEqual,
                Self::LessEqual,
                Self::Select,
                Self::Slice,
                Self::Sin,
                Self::TransposeConv,
                Self::SparseToDense,
                Self::Tile,
                Self::ExpandDims,
                Self::Equal,
                Self::NotEqual,
                Self::Log,
                Self::Sum,
                Self::Sqrt,
                Self::Rsqrt,
                Self::Shape,
                Self::Pow,
                Self::ArgMin,
                Self::FakeQuant,
                Self::ReduceProd,
                Self::ReduceMax,
                Self::Pack,
                Self::LogicalOr,
                Self::OneHot,
                Self::LogicalAnd,
                Self::LogicalNot,
                Self::Unpack,
                Self::ReduceMin,
                Self::FloorDiv,
                Self::ReduceAny,
                Self::Square,
                Self::ZerosLike,
                Self::Fill,
                Self::FloorMod,
                Self::Range,
                Self::ResizeNearestNeighbor,
                Self::LeakyRelu,
                Self::SquaredDifference,
                Self::MirrorPad,
                Self::Abs,
                Self::SplitV,
                Self::Unique,
                Self::Ceil,
                Self::ReverseV2,
                Self::AddN,
                Self::GatherNd,
                Self::Cos,
                Self::Where,
                Self::Rank,
                Self::Elu,
                Self::ReverseSequence,
                Self::MatrixDiag,
                Self::Quantize,
                Self::MatrixSetDiag,
                Self::Round,
                Self::HardSwish,
                Self::If,
                Self::While,
                Self::NonMaxSuppressionV4,
                Self::NonMaxSuppressionV5,
                Self::ScatterNd,
                Self::SelectV2,
                Self::Densify,
                Self::SegmentSum,
                Self::BatchMatmul,
                Self::PlaceholderForGreaterOpCodes,
                Self::Cumsum,
                Self::CallOnce,
                Self::BroadcastTo,
                Self::Rfft2d,
                Self::Conv3d,
                Self::Imag,
                Self::Real,
                Self::ComplexAbs,
                Self::Hashtable,
                Self::HashtableFind,
                Self::HashtableImport,
                Self::HashtableSize,
                Self::ReduceAll,
                Self::Conv3dTranspose,
                Self::VarHandle,
                Self::ReadVariable,
                Self::AssignVariable,
                Self::BroadcastArgs,
                Self::RandomStandardNormal,
                Self::Bucketize,
                Self::RandomUniform,
                Self::Multinomial,
                Self::Gelu,
                Self::DynamicUpdateSlice,
                Self::Relu0To1,
                Self::UnsortedSegmentProd,
                Self::UnsortedSegmentMax,
                Self::UnsortedSegmentSum,
                Self::Atan2,
                Self::UnsortedSegmentMin,
                Self::Sign,
                Self::Bitcast,
                Self::BitwiseXor,
                Self::RightShift,
            ];
        }

        impl ::core::convert::TryFrom<i32> for BuiltinOperator {
            type Error = ::planus::errors::UnknownEnumTagKind;
            #[inline]
            fn try_from(
                value: i32,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTagKind> {
                #[allow(clippy::match_single_binding)]
                match value {
                    0 => ::core::result::Result::Ok(BuiltinOperator::Add),
                    1 => ::core::result::Result::Ok(BuiltinOperator::AveragePool2d),
                    2 => ::core::result::Result::Ok(BuiltinOperator::Concatenation),
                    3 => ::core::result::Result::Ok(BuiltinOperator::Conv2d),
                    4 => ::core::result::Result::Ok(BuiltinOperator::DepthwiseConv2d),
                    5 => ::core::result::Result::Ok(BuiltinOperator::DepthToSpace),
                    6 => ::core::result::Result::Ok(BuiltinOperator::Dequantize),
                    7 => ::core::result::Result::Ok(BuiltinOperator::EmbeddingLookup),
                    8 => ::core::result::Result::Ok(BuiltinOperator::Floor),
                    9 => ::core::result::Result::Ok(BuiltinOperator::FullyConnected),
                    10 => ::core::result::Result::Ok(BuiltinOperator::HashtableLookup),
                    11 => ::core::result::Result::Ok(BuiltinOperator::L2Normalization),
                    12 => ::core::result::Result::Ok(BuiltinOperator::L2Pool2d),
                    13 => ::core::result::Result::Ok(BuiltinOperator::LocalResponseNormalization),
                    14 => ::core::result::Result::Ok(BuiltinOperator::Logistic),
                    15 => ::core::result::Result::Ok(BuiltinOperator::LshProjection),
                    16 => ::core::result::Result::Ok(BuiltinOperator::Lstm),
                    17 => ::core::result::Result::Ok(BuiltinOperator::MaxPool2d),
                    18 => ::core::result::Result::Ok(BuiltinOperator::Mul),
                    19 => ::core::result::Result::Ok(BuiltinOperator::Relu),
                    20 => ::core::result::Result::Ok(BuiltinOperator::ReluN1To1),
                    21 => ::core::result::Result::Ok(BuiltinOperator::Relu6),
                    22 => ::core::result::Result::Ok(BuiltinOperator::Reshape),
                    23 => ::core::result::Result::Ok(BuiltinOperator::ResizeBilinear),
                    24 => ::core::result::Result::Ok(BuiltinOperator::Rnn),
                    25 => ::core::result::Result::Ok(BuiltinOperator::Softmax),
                    26 => ::core::result::Result::Ok(BuiltinOperator::SpaceToDepth),
                    27 => ::core::result::Result::Ok(BuiltinOperator::Svdf),
                    28 => ::core::result::Result::Ok(BuiltinOperator::Tanh),
                    29 => ::core::result::Result::Ok(BuiltinOperator::ConcatEmbeddings),
                    30 => ::core::result::Result::Ok(BuiltinOperator::SkipGram),
                    31 => ::core::result::Result::Ok(BuiltinOperator::Call),
                    32 => ::core::result::Result::Ok(BuiltinOperator::Custom),
                    33 => ::core::result::Result::Ok(BuiltinOperator::EmbeddingLookupSparse),
                    34 => ::core::result::Result::Ok(BuiltinOperator::Pad),
                    35 => ::core::result::Result::Ok(BuiltinOperator::UnidirectionalSequenceRnn),
                    36 => ::core::result::Result::Ok(BuiltinOperator::Gather),
                    37 => ::core::result::Result::Ok(BuiltinOperator::BatchToSpaceNd),
                    38 => ::core::result::Result::Ok(BuiltinOperator::SpaceToBatchNd),
                    39 => ::core::result::Result::Ok(BuiltinOperator::Transpose),
                    40 => ::core::result::Result::Ok(BuiltinOperator::Mean),
                    41 => ::core::result::Result::Ok(BuiltinOperator::Sub),
                    42 => ::core::result::Result::Ok(BuiltinOperator::Div),
                    43 => ::core::result::Result::Ok(BuiltinOperator::Squeeze),
                    44 => ::core::result::Result::Ok(BuiltinOperator::UnidirectionalSequenceLstm),
                    45 => ::core::result::Result::Ok(BuiltinOperator::StridedSlice),
                    46 => ::core::result::Result::Ok(BuiltinOperator::BidirectionalSequenceRnn),
                    47 => ::core::result::Result::Ok(BuiltinOperator::Exp),
                    48 => ::core::result::Result::Ok(BuiltinOperator::TopkV2),
                    49 => ::core::result::Result::Ok(BuiltinOperator::Split),
                    50 => ::core::result::Result::Ok(BuiltinOperator::LogSoftmax),
                    51 => ::core::result::Result::Ok(BuiltinOperator::Delegate),
                    52 => ::core::result::Result::Ok(BuiltinOperator::BidirectionalSequenceLstm),
                    53 => ::core::result::Result::Ok(BuiltinOperator::Cast),
                    54 => ::core::result::Result::Ok(BuiltinOperator::Prelu),
                    55 => ::core::result::Result::Ok(BuiltinOperator::Maximum),
                    56 => ::core::result::Result::Ok(BuiltinOperator::ArgMax),
                    57 => ::core::result::Result::Ok(BuiltinOperator::Minimum),
                    58 => ::core::result::Result::Ok(BuiltinOperator::Less),
                    59 => ::core::result::Result::Ok(BuiltinOperator::Neg),
                    60 => ::core::result::Result::Ok(BuiltinOperator::Padv2),
                    61 => ::core::result::Result::Ok(BuiltinOperator::Greater),
                    62 => ::core::result::Result::Ok(BuiltinOperator::GreaterEqual),
                    63 => ::core::result::Result::Ok(BuiltinOperator::LessEqual),
                    64 => ::core::result::Result::Ok(BuiltinOperator::Select),
                    65 => ::core::result::Result::Ok(BuiltinOperator::Slice),
                    66 => ::core::result::Result::Ok(BuiltinOperator::Sin),
                    67 => ::core::result::Result::Ok(BuiltinOperator::TransposeConv),
                    68 => ::core::result::Result::Ok(BuiltinOperator::SparseToDense),
                    69 => ::core::result::Result::Ok(BuiltinOperator::Tile),
                    70 => ::core::result::Result::Ok(BuiltinOperator::ExpandDims),
                    71 => ::core::result::Result::Ok(BuiltinOperator::Equal),
                    72 => ::core::result::Result::Ok(BuiltinOperator::NotEqual),
                    73 => ::core::result::Result::Ok(BuiltinOperator::Log),
                    74 => ::core::result::Result::Ok(BuiltinOperator::Sum),
                    75 => ::core::result::Result::Ok(BuiltinOperator::Sqrt),
                    76 => ::core::result::Result::Ok(BuiltinOperator::Rsqrt),
                    77 => ::core::result::Result::Ok(BuiltinOperator::Shape),
                    78 => ::core::result::Result::Ok(BuiltinOperator::Pow),
                    79 => ::core::result::Result::Ok(BuiltinOperator::ArgMin),
                    80 => ::core::result::Result::Ok(BuiltinOperator::FakeQuant),
                    81 => ::core::result::Result::Ok(BuiltinOperator::ReduceProd),
                    82 => ::core::result::Result::Ok(BuiltinOperator::ReduceMax),
                    83 => ::core::result::Result::Ok(BuiltinOperator::Pack),
                    84 => ::core::result::Result::Ok(BuiltinOperator::LogicalOr),
                    85 => ::core::result::Result::Ok(BuiltinOperator::OneHot),
                    86 => ::core::result::Result::Ok(BuiltinOperator::LogicalAnd),
                    87 => ::core::result::Result::Ok(BuiltinOperator::LogicalNot),
                    88 => ::core::result::Result::Ok(BuiltinOperator::Unpack),
                    89 => ::core::result::Result::Ok(BuiltinOperator::ReduceMin),
                    90 => ::core::result::Result::Ok(BuiltinOperator::FloorDiv),
                    91 => ::core::result::Result::Ok(BuiltinOperator::ReduceAny),
                    92 => ::core::result::Result::Ok(BuiltinOperator::Square),
                    93 => ::core::result::Result::Ok(BuiltinOperator::ZerosLike),
                    94 => ::core::result::Result::Ok(BuiltinOperator::Fill),
                    95 => ::core::result::Result::Ok(BuiltinOperator::FloorMod),
                    96 => ::core::result::Result::Ok(BuiltinOperator::Range),
                    97 => ::core::result::Result::Ok(BuiltinOperator::ResizeNearestNeighbor),
                    98 => ::core::result::Result::Ok(BuiltinOperator::LeakyRelu),
                    99 => ::core::result::Result::Ok(BuiltinOperator::SquaredDifference),
                    100 => ::core::result::Result::Ok(BuiltinOperator::MirrorPad),
                    101 => ::core::result::Result::Ok(BuiltinOperator::Abs),
                    102 => ::core::result::Result::Ok(BuiltinOperator::SplitV),
                    103 => ::core::result::Result::Ok(BuiltinOperator::Unique),
                    104 => ::core::result::Result::Ok(BuiltinOperator::Ceil),
                    105 => ::core::result::Result::Ok(BuiltinOperator::ReverseV2),
                    106 => ::core::result::Result::Ok(BuiltinOperator::AddN),
                    107 => ::core::result::Result::Ok(BuiltinOperator::GatherNd),
                    108 => ::core::result::Result::Ok(BuiltinOperator::Cos),
                    109 => ::core::result::Result::Ok(BuiltinOperator::Where),
                    110 => ::core::result::Result::Ok(BuiltinOperator::Rank),
                    111 => ::core::result::Result::Ok(BuiltinOperator::Elu),
                    112 => ::core::result::Result::Ok(BuiltinOperator::ReverseSequence),
                    113 => ::core::result::Result::Ok(BuiltinOperator::MatrixDiag),
                    114 => ::core::result::Result::Ok(BuiltinOperator::Quantize),
                    115 => ::core::result::Result::Ok(BuiltinOperator::MatrixSetDiag),
                    116 => ::core::result::Result::Ok(BuiltinOperator::Round),
                    117 => ::core::result::Result::Ok(BuiltinOperator::HardSwish),
                    118 => ::core::result::Result::Ok(BuiltinOperator::If),
                    119 => ::core::result::Result::Ok(BuiltinOperator::While),
                    120 => ::core::result::Result::Ok(BuiltinOperator::NonMaxSuppressionV4),
                    121 => ::core::result::Result::Ok(BuiltinOperator::NonMaxSuppressionV5),
                    122 => ::core::result::Result::Ok(BuiltinOperator::ScatterNd),
                    123 => ::core::result::Result::Ok(BuiltinOperator::SelectV2),
                    124 => ::core::result::Result::Ok(BuiltinOperator::Densify),
                    125 => ::core::result::Result::Ok(BuiltinOperator::SegmentSum),
                    126 => ::core::result::Result::Ok(BuiltinOperator::BatchMatmul),
                    127 => {
                        ::core::result::Result::Ok(BuiltinOperator::PlaceholderForGreaterOpCodes)
                    }
                    128 => ::core::result::Result::Ok(BuiltinOperator::Cumsum),
                    129 => ::core::result::Result::Ok(BuiltinOperator::CallOnce),
                    130 => ::core::result::Result::Ok(BuiltinOperator::BroadcastTo),
                    131 => ::core::result::Result::Ok(BuiltinOperator::Rfft2d),
                    132 => ::core::result::Result::Ok(BuiltinOperator::Conv3d),
                    133 => ::core::result::Result::Ok(BuiltinOperator::Imag),
                    134 => ::core::result::Result::Ok(BuiltinOperator::Real),
                    135 => ::core::result::Result::Ok(BuiltinOperator::ComplexAbs),
                    136 => ::core::result::Result::Ok(BuiltinOperator::Hashtable),
                    137 => ::core::result::Result::Ok(BuiltinOperator::HashtableFind),
                    138 => ::core::result::Result::Ok(BuiltinOperator::HashtableImport),
                    139 => ::core::result::Result::Ok(BuiltinOperator::HashtableSize),
                    140 => ::core::result::Result::Ok(BuiltinOperator::ReduceAll),
                    141 => ::core::result::Result::Ok(BuiltinOperator::Conv3dTranspose),
                    142 => ::core::result::Result::Ok(BuiltinOperator::VarHandle),
                    143 => ::core::result::Result::Ok(BuiltinOperator::ReadVariable),
                    144 => ::core::result::Result::Ok(BuiltinOperator::AssignVariable),
                    145 => ::core::result::Result::Ok(BuiltinOperator::BroadcastArgs),
                    146 => ::core::result::Result::Ok(BuiltinOperator::RandomStandardNormal),
                    147 => ::core::result::Result::Ok(BuiltinOperator::Bucketize),
                    148 => ::core::result::Result::Ok(BuiltinOperator::RandomUniform),
                    149 => ::core::result::Result::Ok(BuiltinOperator::Multinomial),
                    150 => ::core::result::Result::Ok(BuiltinOperator::Gelu),
                    151 => ::core::result::Result::Ok(BuiltinOperator::DynamicUpdateSlice),
                    152 => ::core::result::Result::Ok(BuiltinOperator::Relu0To1),
                    153 => ::core::result::Result::Ok(BuiltinOperator::UnsortedSegmentProd),
                    154 => ::core::result::Result::Ok(BuiltinOperator::UnsortedSegmentMax),
                    155 => ::core::result::Result::Ok(BuiltinOperator::UnsortedSegmentSum),
                    156 => ::core::result::Result::Ok(BuiltinOperator::Atan2),
                    157 => ::core::result::Result::Ok(BuiltinOperator::UnsortedSegmentMin),
                    158 => ::core::result::Result::Ok(BuiltinOperator::Sign),
                    159 => ::core::result::Result::Ok(BuiltinOperator::Bitcast),
                    160 => ::core::result::Result::Ok(BuiltinOperator::BitwiseXor),
                    161 => ::core::result::Result::Ok(BuiltinOperator::RightShift),

                    _ => ::core::result::Result::Err(::planus::errors::UnknownEnumTagKind {
                        tag: value as i128,
                    }),
                }
            }
        }

        impl ::core::convert::From<BuiltinOperator> for i32 {
            #[inline]
            fn from(value: BuiltinOperator) -> Self {
                value as i32
            }
        }

        /// # Safety
        /// The Planus compiler correctly calculates `ALIGNMENT` and `SIZE`.
        unsafe impl ::planus::Primitive for BuiltinOperator {
            const ALIGNMENT: usize = 4;
            const SIZE: usize = 4;
        }

        impl ::planus::WriteAsPrimitive<BuiltinOperator> for BuiltinOperator {
            #[inline]
            fn write<const N: usize>(&self, cursor: ::planus::Cursor<'_, N>, buffer_position: u32) {
                (*self as i32).write(cursor, buffer_position);
            }
        }

        impl ::planus::WriteAs<BuiltinOperator> for BuiltinOperator {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> BuiltinOperator {
                *self
            }
        }

        impl ::planus::WriteAsDefault<BuiltinOperator, BuiltinOperator> for BuiltinOperator {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
                default: &BuiltinOperator,
            ) -> ::core::option::Option<BuiltinOperator> {
                if self == default {
                    ::core::option::Option::None
                } else {
                    ::core::option::Option::Some(*self)
                }
            }
        }

        impl ::planus::WriteAsOptional<BuiltinOperator> for BuiltinOperator {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<BuiltinOperator> {
                ::core::option::Option::Some(*self)
            }
        }

        impl<'buf> ::planus::TableRead<'buf> for BuiltinOperator {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                let n: i32 = ::planus::TableRead::from_buffer(buffer, offset)?;
                ::core::result::Result::Ok(::core::convert::TryInto::try_into(n)?)
            }
        }

        impl<'buf> ::planus::VectorReadInner<'buf> for BuiltinOperator {
            type Error = ::planus::errors::UnknownEnumTag;
            const STRIDE: usize = 4;
            #[inline]
            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTag> {
                let value = unsafe { <i32 as ::planus::VectorRead>::from_buffer(buffer, offset) };
                let value: ::core::result::Result<Self, _> =
                    ::core::convert::TryInto::try_into(value);
                value.map_err(|error_kind| {
                    error_kind.with_error_location(
                        "BuiltinOperator",
                        "VectorRead::from_buffer",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<BuiltinOperator> for BuiltinOperator {
            const STRIDE: usize = 4;

            type Value = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Self {
                *self
            }

            #[inline]
            unsafe fn write_values(
                values: &[Self],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (4 * i) as u32,
                    );
                }
            }
        }

        /// The union `BuiltinOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Union `BuiltinOptions` in the file `schema.fbs:278`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub enum BuiltinOptions {
            /// The variant of type `Conv2DOptions` in the union `BuiltinOptions`
            Conv2DOptions(::planus::alloc::boxed::Box<self::Conv2DOptions>),

            /// The variant of type `DepthwiseConv2DOptions` in the union `BuiltinOptions`
            DepthwiseConv2DOptions(::planus::alloc::boxed::Box<self::DepthwiseConv2DOptions>),

            /// The variant `Unused3` in the union `BuiltinOptions`
            Unused3(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant `Unused4` in the union `BuiltinOptions`
            Unused4(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant of type `Pool2DOptions` in the union `BuiltinOptions`
            Pool2DOptions(::planus::alloc::boxed::Box<self::Pool2DOptions>),

            /// The variant `Unused6` in the union `BuiltinOptions`
            Unused6(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant `Unused7` in the union `BuiltinOptions`
            Unused7(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant `Unused8` in the union `BuiltinOptions`
            Unused8(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant `Unused9` in the union `BuiltinOptions`
            Unused9(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant of type `ConcatenationOptions` in the union `BuiltinOptions`
            ConcatenationOptions(::planus::alloc::boxed::Box<self::ConcatenationOptions>),

            /// The variant of type `AddOptions` in the union `BuiltinOptions`
            AddOptions(::planus::alloc::boxed::Box<self::AddOptions>),

            /// The variant `Unused12` in the union `BuiltinOptions`
            Unused12(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant `Unused13` in the union `BuiltinOptions`
            Unused13(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant `Unused14` in the union `BuiltinOptions`
            Unused14(::planus::alloc::boxed::Box<self::Unused>),

            /// The variant of type `ResizeBilinearOptions` in the union `BuiltinOptions`
            ResizeBilinearOptions(::planus::alloc::boxed::Box<self::ResizeBilinearOptions>),
        }

        impl BuiltinOptions {
            /// Creates a [BuiltinOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> BuiltinOptionsBuilder<::planus::Uninitialized> {
                BuiltinOptionsBuilder(::planus::Uninitialized)
            }

            #[inline]
            pub fn create_conv2_d_options(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Conv2DOptions>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(1, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_depthwise_conv2_d_options(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::DepthwiseConv2DOptions>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(2, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused3(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(3, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused4(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(4, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_pool2_d_options(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Pool2DOptions>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(5, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused6(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(6, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused7(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(7, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused8(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(8, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused9(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(9, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_concatenation_options(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::ConcatenationOptions>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(10, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_add_options(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::AddOptions>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(11, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused12(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(12, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused13(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(13, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_unused14(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::Unused>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(14, value.prepare(builder).downcast())
            }

            #[inline]
            pub fn create_resize_bilinear_options(
                builder: &mut ::planus::Builder,
                value: impl ::planus::WriteAsOffset<self::ResizeBilinearOptions>,
            ) -> ::planus::UnionOffset<Self> {
                ::planus::UnionOffset::new(15, value.prepare(builder).downcast())
            }
        }

        impl ::planus::WriteAsUnion<BuiltinOptions> for BuiltinOptions {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::UnionOffset<Self> {
                match self {
                    Self::Conv2DOptions(value) => Self::create_conv2_d_options(builder, value),
                    Self::DepthwiseConv2DOptions(value) => {
                        Self::create_depthwise_conv2_d_options(builder, value)
                    }
                    Self::Unused3(value) => Self::create_unused3(builder, value),
                    Self::Unused4(value) => Self::create_unused4(builder, value),
                    Self::Pool2DOptions(value) => Self::create_pool2_d_options(builder, value),
                    Self::Unused6(value) => Self::create_unused6(builder, value),
                    Self::Unused7(value) => Self::create_unused7(builder, value),
                    Self::Unused8(value) => Self::create_unused8(builder, value),
                    Self::Unused9(value) => Self::create_unused9(builder, value),
                    Self::ConcatenationOptions(value) => {
                        Self::create_concatenation_options(builder, value)
                    }
                    Self::AddOptions(value) => Self::create_add_options(builder, value),
                    Self::Unused12(value) => Self::create_unused12(builder, value),
                    Self::Unused13(value) => Self::create_unused13(builder, value),
                    Self::Unused14(value) => Self::create_unused14(builder, value),
                    Self::ResizeBilinearOptions(value) => {
                        Self::create_resize_bilinear_options(builder, value)
                    }
                }
            }
        }

        impl ::planus::WriteAsOptionalUnion<BuiltinOptions> for BuiltinOptions {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<Self>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }

        /// Builder for serializing an instance of the [BuiltinOptions] type.
        ///
        /// Can be created using the [BuiltinOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct BuiltinOptionsBuilder<T>(T);

        impl BuiltinOptionsBuilder<::planus::Uninitialized> {
            /// Creates an instance of the [`Conv2DOptions` variant](BuiltinOptions#variant.Conv2DOptions).
            #[inline]
            pub fn conv2_d_options<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<1, T>>
            where
                T: ::planus::WriteAsOffset<self::Conv2DOptions>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`DepthwiseConv2DOptions` variant](BuiltinOptions#variant.DepthwiseConv2DOptions).
            #[inline]
            pub fn depthwise_conv2_d_options<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<2, T>>
            where
                T: ::planus::WriteAsOffset<self::DepthwiseConv2DOptions>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused3` variant](BuiltinOptions#variant.Unused3).
            #[inline]
            pub fn unused3<T>(self, value: T) -> BuiltinOptionsBuilder<::planus::Initialized<3, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused4` variant](BuiltinOptions#variant.Unused4).
            #[inline]
            pub fn unused4<T>(self, value: T) -> BuiltinOptionsBuilder<::planus::Initialized<4, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Pool2DOptions` variant](BuiltinOptions#variant.Pool2DOptions).
            #[inline]
            pub fn pool2_d_options<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<5, T>>
            where
                T: ::planus::WriteAsOffset<self::Pool2DOptions>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused6` variant](BuiltinOptions#variant.Unused6).
            #[inline]
            pub fn unused6<T>(self, value: T) -> BuiltinOptionsBuilder<::planus::Initialized<6, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused7` variant](BuiltinOptions#variant.Unused7).
            #[inline]
            pub fn unused7<T>(self, value: T) -> BuiltinOptionsBuilder<::planus::Initialized<7, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused8` variant](BuiltinOptions#variant.Unused8).
            #[inline]
            pub fn unused8<T>(self, value: T) -> BuiltinOptionsBuilder<::planus::Initialized<8, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused9` variant](BuiltinOptions#variant.Unused9).
            #[inline]
            pub fn unused9<T>(self, value: T) -> BuiltinOptionsBuilder<::planus::Initialized<9, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`ConcatenationOptions` variant](BuiltinOptions#variant.ConcatenationOptions).
            #[inline]
            pub fn concatenation_options<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<10, T>>
            where
                T: ::planus::WriteAsOffset<self::ConcatenationOptions>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`AddOptions` variant](BuiltinOptions#variant.AddOptions).
            #[inline]
            pub fn add_options<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<11, T>>
            where
                T: ::planus::WriteAsOffset<self::AddOptions>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused12` variant](BuiltinOptions#variant.Unused12).
            #[inline]
            pub fn unused12<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<12, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused13` variant](BuiltinOptions#variant.Unused13).
            #[inline]
            pub fn unused13<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<13, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`Unused14` variant](BuiltinOptions#variant.Unused14).
            #[inline]
            pub fn unused14<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<14, T>>
            where
                T: ::planus::WriteAsOffset<self::Unused>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }

            /// Creates an instance of the [`ResizeBilinearOptions` variant](BuiltinOptions#variant.ResizeBilinearOptions).
            #[inline]
            pub fn resize_bilinear_options<T>(
                self,
                value: T,
            ) -> BuiltinOptionsBuilder<::planus::Initialized<15, T>>
            where
                T: ::planus::WriteAsOffset<self::ResizeBilinearOptions>,
            {
                BuiltinOptionsBuilder(::planus::Initialized(value))
            }
        }

        impl<const N: u8, T> BuiltinOptionsBuilder<::planus::Initialized<N, T>> {
            /// Finish writing the builder to get an [UnionOffset](::planus::UnionOffset) to a serialized [BuiltinOptions].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions>
            where
                Self: ::planus::WriteAsUnion<BuiltinOptions>,
            {
                ::planus::WriteAsUnion::prepare(&self, builder)
            }
        }

        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<1, T>>
        where
            T: ::planus::WriteAsOffset<self::Conv2DOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(1, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<1, T>>
        where
            T: ::planus::WriteAsOffset<self::Conv2DOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<2, T>>
        where
            T: ::planus::WriteAsOffset<self::DepthwiseConv2DOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(2, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<2, T>>
        where
            T: ::planus::WriteAsOffset<self::DepthwiseConv2DOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<3, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(3, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<3, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<4, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(4, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<4, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<5, T>>
        where
            T: ::planus::WriteAsOffset<self::Pool2DOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(5, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<5, T>>
        where
            T: ::planus::WriteAsOffset<self::Pool2DOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<6, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(6, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<6, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<7, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(7, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<7, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<8, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(8, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<8, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<9, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(9, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<9, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<10, T>>
        where
            T: ::planus::WriteAsOffset<self::ConcatenationOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(10, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<10, T>>
        where
            T: ::planus::WriteAsOffset<self::ConcatenationOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<11, T>>
        where
            T: ::planus::WriteAsOffset<self::AddOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(11, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<11, T>>
        where
            T: ::planus::WriteAsOffset<self::AddOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<12, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(12, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<12, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<13, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(13, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<13, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<14, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(14, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<14, T>>
        where
            T: ::planus::WriteAsOffset<self::Unused>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }
        impl<T> ::planus::WriteAsUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<15, T>>
        where
            T: ::planus::WriteAsOffset<self::ResizeBilinearOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::UnionOffset<BuiltinOptions> {
                ::planus::UnionOffset::new(15, (self.0).0.prepare(builder).downcast())
            }
        }

        impl<T> ::planus::WriteAsOptionalUnion<BuiltinOptions>
            for BuiltinOptionsBuilder<::planus::Initialized<15, T>>
        where
            T: ::planus::WriteAsOffset<self::ResizeBilinearOptions>,
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::UnionOffset<BuiltinOptions>> {
                ::core::option::Option::Some(::planus::WriteAsUnion::prepare(self, builder))
            }
        }

        /// Reference to a deserialized [BuiltinOptions].
        #[derive(Copy, Clone, Debug)]
        pub enum BuiltinOptionsRef<'a> {
            Conv2DOptions(self::Conv2DOptionsRef<'a>),
            DepthwiseConv2DOptions(self::DepthwiseConv2DOptionsRef<'a>),
            Unused3(self::UnusedRef<'a>),
            Unused4(self::UnusedRef<'a>),
            Pool2DOptions(self::Pool2DOptionsRef<'a>),
            Unused6(self::UnusedRef<'a>),
            Unused7(self::UnusedRef<'a>),
            Unused8(self::UnusedRef<'a>),
            Unused9(self::UnusedRef<'a>),
            ConcatenationOptions(self::ConcatenationOptionsRef<'a>),
            AddOptions(self::AddOptionsRef<'a>),
            Unused12(self::UnusedRef<'a>),
            Unused13(self::UnusedRef<'a>),
            Unused14(self::UnusedRef<'a>),
            ResizeBilinearOptions(self::ResizeBilinearOptionsRef<'a>),
        }

        impl<'a> ::core::convert::TryFrom<BuiltinOptionsRef<'a>> for BuiltinOptions {
            type Error = ::planus::Error;

            fn try_from(value: BuiltinOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(match value {
                    BuiltinOptionsRef::Conv2DOptions(value) => {
                        Self::Conv2DOptions(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::DepthwiseConv2DOptions(value) => {
                        Self::DepthwiseConv2DOptions(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused3(value) => {
                        Self::Unused3(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused4(value) => {
                        Self::Unused4(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Pool2DOptions(value) => {
                        Self::Pool2DOptions(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused6(value) => {
                        Self::Unused6(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused7(value) => {
                        Self::Unused7(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused8(value) => {
                        Self::Unused8(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused9(value) => {
                        Self::Unused9(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::ConcatenationOptions(value) => {
                        Self::ConcatenationOptions(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::AddOptions(value) => {
                        Self::AddOptions(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused12(value) => {
                        Self::Unused12(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused13(value) => {
                        Self::Unused13(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::Unused14(value) => {
                        Self::Unused14(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }

                    BuiltinOptionsRef::ResizeBilinearOptions(value) => {
                        Self::ResizeBilinearOptions(::planus::alloc::boxed::Box::new(
                            ::core::convert::TryFrom::try_from(value)?,
                        ))
                    }
                })
            }
        }

        impl<'a> ::planus::TableReadUnion<'a> for BuiltinOptionsRef<'a> {
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                tag: u8,
                field_offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                match tag {
                    1 => ::core::result::Result::Ok(Self::Conv2DOptions(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    2 => ::core::result::Result::Ok(Self::DepthwiseConv2DOptions(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    3 => ::core::result::Result::Ok(Self::Unused3(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    4 => ::core::result::Result::Ok(Self::Unused4(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    5 => ::core::result::Result::Ok(Self::Pool2DOptions(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    6 => ::core::result::Result::Ok(Self::Unused6(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    7 => ::core::result::Result::Ok(Self::Unused7(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    8 => ::core::result::Result::Ok(Self::Unused8(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    9 => ::core::result::Result::Ok(Self::Unused9(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    10 => ::core::result::Result::Ok(Self::ConcatenationOptions(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    11 => ::core::result::Result::Ok(Self::AddOptions(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    12 => ::core::result::Result::Ok(Self::Unused12(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    13 => ::core::result::Result::Ok(Self::Unused13(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    14 => ::core::result::Result::Ok(Self::Unused14(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    15 => ::core::result::Result::Ok(Self::ResizeBilinearOptions(
                        ::planus::TableRead::from_buffer(buffer, field_offset)?,
                    )),
                    _ => {
                        ::core::result::Result::Err(::planus::errors::ErrorKind::UnknownUnionTag {
                            tag,
                        })
                    }
                }
            }
        }

        impl<'a> ::planus::VectorReadUnion<'a> for BuiltinOptionsRef<'a> {
            const VECTOR_NAME: &'static str = "[BuiltinOptionsRef]";
        }

        /// The table `Unused` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Unused` in the file `schema.fbs:298`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Unused {}

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Unused {
            fn default() -> Self {
                Self {}
            }
        }

        impl Unused {
            /// Creates a [UnusedBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> UnusedBuilder<()> {
                UnusedBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(builder: &mut ::planus::Builder) -> ::planus::Offset<Self> {
                let table_writer: ::planus::table_writer::TableWriter<4> =
                    ::core::default::Default::default();
                unsafe {
                    table_writer.finish(builder, |_table_writer| {});
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Unused>> for Unused {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Unused> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Unused>> for Unused {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Unused>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Unused> for Unused {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Unused> {
                Unused::create(builder)
            }
        }

        /// Builder for serializing an instance of the [Unused] type.
        ///
        /// Can be created using the [Unused::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct UnusedBuilder<State>(State);

        impl UnusedBuilder<()> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Unused].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Unused>
            where
                Self: ::planus::WriteAsOffset<Unused>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Unused>> for UnusedBuilder<()> {
            type Prepared = ::planus::Offset<Unused>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Unused> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Unused>> for UnusedBuilder<()> {
            type Prepared = ::planus::Offset<Unused>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Unused>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Unused> for UnusedBuilder<()> {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Unused> {
                Unused::create(builder)
            }
        }

        /// Reference to a deserialized [Unused].
        #[derive(Copy, Clone)]
        pub struct UnusedRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> UnusedRef<'a> {}

        impl<'a> ::core::fmt::Debug for UnusedRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("UnusedRef");

                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<UnusedRef<'a>> for Unused {
            type Error = ::planus::Error;

            fn try_from(_value: UnusedRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {})
            }
        }

        impl<'a> ::planus::TableRead<'a> for UnusedRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for UnusedRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location("[UnusedRef]", "get", buffer.offset_from_start)
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Unused>> for Unused {
            type Value = ::planus::Offset<Unused>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Unused>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for UnusedRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[UnusedRef]", "read_as_root", 0)
                })
            }
        }

        /// The enum `Padding` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Enum `Padding` in the file `schema.fbs:301`
        #[derive(
            Copy,
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[repr(i8)]
        pub enum Padding {
            /// The variant `SAME` in the enum `Padding`
            Same = 0,

            /// The variant `VALID` in the enum `Padding`
            Valid = 1,
        }

        impl Padding {
            /// Array containing all valid variants of Padding
            pub const ENUM_VALUES: [Self; 2] = [Self::Same, Self::Valid];
        }

        impl ::core::convert::TryFrom<i8> for Padding {
            type Error = ::planus::errors::UnknownEnumTagKind;
            #[inline]
            fn try_from(
                value: i8,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTagKind> {
                #[allow(clippy::match_single_binding)]
                match value {
                    0 => ::core::result::Result::Ok(Padding::Same),
                    1 => ::core::result::Result::Ok(Padding::Valid),

                    _ => ::core::result::Result::Err(::planus::errors::UnknownEnumTagKind {
                        tag: value as i128,
                    }),
                }
            }
        }

        impl ::core::convert::From<Padding> for i8 {
            #[inline]
            fn from(value: Padding) -> Self {
                value as i8
            }
        }

        /// # Safety
        /// The Planus compiler correctly calculates `ALIGNMENT` and `SIZE`.
        unsafe impl ::planus::Primitive for Padding {
            const ALIGNMENT: usize = 1;
            const SIZE: usize = 1;
        }

        impl ::planus::WriteAsPrimitive<Padding> for Padding {
            #[inline]
            fn write<const N: usize>(&self, cursor: ::planus::Cursor<'_, N>, buffer_position: u32) {
                (*self as i8).write(cursor, buffer_position);
            }
        }

        impl ::planus::WriteAs<Padding> for Padding {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Padding {
                *self
            }
        }

        impl ::planus::WriteAsDefault<Padding, Padding> for Padding {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
                default: &Padding,
            ) -> ::core::option::Option<Padding> {
                if self == default {
                    ::core::option::Option::None
                } else {
                    ::core::option::Option::Some(*self)
                }
            }
        }

        impl ::planus::WriteAsOptional<Padding> for Padding {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> ::core::option::Option<Padding> {
                ::core::option::Option::Some(*self)
            }
        }

        impl<'buf> ::planus::TableRead<'buf> for Padding {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                let n: i8 = ::planus::TableRead::from_buffer(buffer, offset)?;
                ::core::result::Result::Ok(::core::convert::TryInto::try_into(n)?)
            }
        }

        impl<'buf> ::planus::VectorReadInner<'buf> for Padding {
            type Error = ::planus::errors::UnknownEnumTag;
            const STRIDE: usize = 1;
            #[inline]
            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTag> {
                let value = unsafe { *buffer.buffer.get_unchecked(offset) as i8 };
                let value: ::core::result::Result<Self, _> =
                    ::core::convert::TryInto::try_into(value);
                value.map_err(|error_kind| {
                    error_kind.with_error_location(
                        "Padding",
                        "VectorRead::from_buffer",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<Padding> for Padding {
            const STRIDE: usize = 1;

            type Value = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Self {
                *self
            }

            #[inline]
            unsafe fn write_values(
                values: &[Self],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 1];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - i as u32,
                    );
                }
            }
        }

        /// The enum `ActivationFunctionType` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Enum `ActivationFunctionType` in the file `schema.fbs:302`
        #[derive(
            Copy,
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[repr(i8)]
        pub enum ActivationFunctionType {
            /// The variant `NONE` in the enum `ActivationFunctionType`
            None = 0,

            /// The variant `RELU` in the enum `ActivationFunctionType`
            Relu = 1,

            /// The variant `RELU_N1_TO_1` in the enum `ActivationFunctionType`
            ReluN1To1 = 2,

            /// The variant `RELU6` in the enum `ActivationFunctionType`
            Relu6 = 3,

            /// The variant `TANH` in the enum `ActivationFunctionType`
            Tanh = 4,

            /// The variant `SIGN_BIT` in the enum `ActivationFunctionType`
            SignBit = 5,
        }

        impl ActivationFunctionType {
            /// Array containing all valid variants of ActivationFunctionType
            pub const ENUM_VALUES: [Self; 6] = [
                Self::None,
                Self::Relu,
                Self::ReluN1To1,
                Self::Relu6,
                Self::Tanh,
                Self::SignBit,
            ];
        }

        impl ::core::convert::TryFrom<i8> for ActivationFunctionType {
            type Error = ::planus::errors::UnknownEnumTagKind;
            #[inline]
            fn try_from(
                value: i8,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTagKind> {
                #[allow(clippy::match_single_binding)]
                match value {
                    0 => ::core::result::Result::Ok(ActivationFunctionType::None),
                    1 => ::core::result::Result::Ok(ActivationFunctionType::Relu),
                    2 => ::core::result::Result::Ok(ActivationFunctionType::ReluN1To1),
                    3 => ::core::result::Result::Ok(ActivationFunctionType::Relu6),
                    4 => ::core::result::Result::Ok(ActivationFunctionType::Tanh),
                    5 => ::core::result::Result::Ok(ActivationFunctionType::SignBit),

                    _ => ::core::result::Result::Err(::planus::errors::UnknownEnumTagKind {
                        tag: value as i128,
                    }),
                }
            }
        }

        impl ::core::convert::From<ActivationFunctionType> for i8 {
            #[inline]
            fn from(value: ActivationFunctionType) -> Self {
                value as i8
            }
        }

        /// # Safety
        /// The Planus compiler correctly calculates `ALIGNMENT` and `SIZE`.
        unsafe impl ::planus::Primitive for ActivationFunctionType {
            const ALIGNMENT: usize = 1;
            const SIZE: usize = 1;
        }

        impl ::planus::WriteAsPrimitive<ActivationFunctionType> for ActivationFunctionType {
            #[inline]
            fn write<const N: usize>(&self, cursor: ::planus::Cursor<'_, N>, buffer_position: u32) {
                (*self as i8).write(cursor, buffer_position);
            }
        }

        impl ::planus::WriteAs<ActivationFunctionType> for ActivationFunctionType {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> ActivationFunctionType {
                *self
            }
        }

        impl ::planus::WriteAsDefault<ActivationFunctionType, ActivationFunctionType>
            for ActivationFunctionType
        {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
                default: &ActivationFunctionType,
            ) -> ::core::option::Option<ActivationFunctionType> {
                if self == default {
                    ::core::option::Option::None
                } else {
                    ::core::option::Option::Some(*self)
                }
            }
        }

        impl ::planus::WriteAsOptional<ActivationFunctionType> for ActivationFunctionType {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<ActivationFunctionType> {
                ::core::option::Option::Some(*self)
            }
        }

        impl<'buf> ::planus::TableRead<'buf> for ActivationFunctionType {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                let n: i8 = ::planus::TableRead::from_buffer(buffer, offset)?;
                ::core::result::Result::Ok(::core::convert::TryInto::try_into(n)?)
            }
        }

        impl<'buf> ::planus::VectorReadInner<'buf> for ActivationFunctionType {
            type Error = ::planus::errors::UnknownEnumTag;
            const STRIDE: usize = 1;
            #[inline]
            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTag> {
                let value = unsafe { *buffer.buffer.get_unchecked(offset) as i8 };
                let value: ::core::result::Result<Self, _> =
                    ::core::convert::TryInto::try_into(value);
                value.map_err(|error_kind| {
                    error_kind.with_error_location(
                        "ActivationFunctionType",
                        "VectorRead::from_buffer",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<ActivationFunctionType> for ActivationFunctionType {
            const STRIDE: usize = 1;

            type Value = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Self {
                *self
            }

            #[inline]
            unsafe fn write_values(
                values: &[Self],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 1];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - i as u32,
                    );
                }
            }
        }

        /// The table `Conv2DOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Conv2DOptions` in the file `schema.fbs:311`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Conv2DOptions {
            /// The field `padding` in the table `Conv2DOptions`
            pub padding: self::Padding,
            /// The field `stride_w` in the table `Conv2DOptions`
            pub stride_w: i32,
            /// The field `stride_h` in the table `Conv2DOptions`
            pub stride_h: i32,
            /// The field `fused_activation_function` in the table `Conv2DOptions`
            pub fused_activation_function: self::ActivationFunctionType,
            /// The field `dilation_w_factor` in the table `Conv2DOptions`
            pub dilation_w_factor: i32,
            /// The field `dilation_h_factor` in the table `Conv2DOptions`
            pub dilation_h_factor: i32,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Conv2DOptions {
            fn default() -> Self {
                Self {
                    padding: self::Padding::Same,
                    stride_w: 0,
                    stride_h: 0,
                    fused_activation_function: self::ActivationFunctionType::None,
                    dilation_w_factor: 1,
                    dilation_h_factor: 1,
                }
            }
        }

        impl Conv2DOptions {
            /// Creates a [Conv2DOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> Conv2DOptionsBuilder<()> {
                Conv2DOptionsBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_padding: impl ::planus::WriteAsDefault<self::Padding, self::Padding>,
                field_stride_w: impl ::planus::WriteAsDefault<i32, i32>,
                field_stride_h: impl ::planus::WriteAsDefault<i32, i32>,
                field_fused_activation_function: impl ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                field_dilation_w_factor: impl ::planus::WriteAsDefault<i32, i32>,
                field_dilation_h_factor: impl ::planus::WriteAsDefault<i32, i32>,
            ) -> ::planus::Offset<Self> {
                let prepared_padding = field_padding.prepare(builder, &self::Padding::Same);
                let prepared_stride_w = field_stride_w.prepare(builder, &0);
                let prepared_stride_h = field_stride_h.prepare(builder, &0);
                let prepared_fused_activation_function = field_fused_activation_function
                    .prepare(builder, &self::ActivationFunctionType::None);
                let prepared_dilation_w_factor = field_dilation_w_factor.prepare(builder, &1);
                let prepared_dilation_h_factor = field_dilation_h_factor.prepare(builder, &1);

                let mut table_writer: ::planus::table_writer::TableWriter<16> =
                    ::core::default::Default::default();
                if prepared_stride_w.is_some() {
                    table_writer.write_entry::<i32>(1);
                }
                if prepared_stride_h.is_some() {
                    table_writer.write_entry::<i32>(2);
                }
                if prepared_dilation_w_factor.is_some() {
                    table_writer.write_entry::<i32>(4);
                }
                if prepared_dilation_h_factor.is_some() {
                    table_writer.write_entry::<i32>(5);
                }
                if prepared_padding.is_some() {
                    table_writer.write_entry::<self::Padding>(0);
                }
                if prepared_fused_activation_function.is_some() {
                    table_writer.write_entry::<self::ActivationFunctionType>(3);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_stride_w) = prepared_stride_w {
                            object_writer.write::<_, _, 4>(&prepared_stride_w);
                        }
                        if let ::core::option::Option::Some(prepared_stride_h) = prepared_stride_h {
                            object_writer.write::<_, _, 4>(&prepared_stride_h);
                        }
                        if let ::core::option::Option::Some(prepared_dilation_w_factor) =
                            prepared_dilation_w_factor
                        {
                            object_writer.write::<_, _, 4>(&prepared_dilation_w_factor);
                        }
                        if let ::core::option::Option::Some(prepared_dilation_h_factor) =
                            prepared_dilation_h_factor
                        {
                            object_writer.write::<_, _, 4>(&prepared_dilation_h_factor);
                        }
                        if let ::core::option::Option::Some(prepared_padding) = prepared_padding {
                            object_writer.write::<_, _, 1>(&prepared_padding);
                        }
                        if let ::core::option::Option::Some(prepared_fused_activation_function) =
                            prepared_fused_activation_function
                        {
                            object_writer.write::<_, _, 1>(&prepared_fused_activation_function);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Conv2DOptions>> for Conv2DOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Conv2DOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Conv2DOptions>> for Conv2DOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Conv2DOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Conv2DOptions> for Conv2DOptions {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Conv2DOptions> {
                Conv2DOptions::create(
                    builder,
                    self.padding,
                    self.stride_w,
                    self.stride_h,
                    self.fused_activation_function,
                    self.dilation_w_factor,
                    self.dilation_h_factor,
                )
            }
        }

        /// Builder for serializing an instance of the [Conv2DOptions] type.
        ///
        /// Can be created using the [Conv2DOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct Conv2DOptionsBuilder<State>(State);

        impl Conv2DOptionsBuilder<()> {
            /// Setter for the [`padding` field](Conv2DOptions#structfield.padding).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn padding<T0>(self, value: T0) -> Conv2DOptionsBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
            {
                Conv2DOptionsBuilder((value,))
            }

            /// Sets the [`padding` field](Conv2DOptions#structfield.padding) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn padding_as_default(self) -> Conv2DOptionsBuilder<(::planus::DefaultValue,)> {
                self.padding(::planus::DefaultValue)
            }
        }

        impl<T0> Conv2DOptionsBuilder<(T0,)> {
            /// Setter for the [`stride_w` field](Conv2DOptions#structfield.stride_w).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_w<T1>(self, value: T1) -> Conv2DOptionsBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0,) = self.0;
                Conv2DOptionsBuilder((v0, value))
            }

            /// Sets the [`stride_w` field](Conv2DOptions#structfield.stride_w) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_w_as_default(self) -> Conv2DOptionsBuilder<(T0, ::planus::DefaultValue)> {
                self.stride_w(::planus::DefaultValue)
            }
        }

        impl<T0, T1> Conv2DOptionsBuilder<(T0, T1)> {
            /// Setter for the [`stride_h` field](Conv2DOptions#structfield.stride_h).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_h<T2>(self, value: T2) -> Conv2DOptionsBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1) = self.0;
                Conv2DOptionsBuilder((v0, v1, value))
            }

            /// Sets the [`stride_h` field](Conv2DOptions#structfield.stride_h) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_h_as_default(
                self,
            ) -> Conv2DOptionsBuilder<(T0, T1, ::planus::DefaultValue)> {
                self.stride_h(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2> Conv2DOptionsBuilder<(T0, T1, T2)> {
            /// Setter for the [`fused_activation_function` field](Conv2DOptions#structfield.fused_activation_function).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function<T3>(
                self,
                value: T3,
            ) -> Conv2DOptionsBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            {
                let (v0, v1, v2) = self.0;
                Conv2DOptionsBuilder((v0, v1, v2, value))
            }

            /// Sets the [`fused_activation_function` field](Conv2DOptions#structfield.fused_activation_function) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function_as_default(
                self,
            ) -> Conv2DOptionsBuilder<(T0, T1, T2, ::planus::DefaultValue)> {
                self.fused_activation_function(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3> Conv2DOptionsBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`dilation_w_factor` field](Conv2DOptions#structfield.dilation_w_factor).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_w_factor<T4>(
                self,
                value: T4,
            ) -> Conv2DOptionsBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2, v3) = self.0;
                Conv2DOptionsBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`dilation_w_factor` field](Conv2DOptions#structfield.dilation_w_factor) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_w_factor_as_default(
                self,
            ) -> Conv2DOptionsBuilder<(T0, T1, T2, T3, ::planus::DefaultValue)> {
                self.dilation_w_factor(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4> Conv2DOptionsBuilder<(T0, T1, T2, T3, T4)> {
            /// Setter for the [`dilation_h_factor` field](Conv2DOptions#structfield.dilation_h_factor).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_h_factor<T5>(
                self,
                value: T5,
            ) -> Conv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
            where
                T5: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2, v3, v4) = self.0;
                Conv2DOptionsBuilder((v0, v1, v2, v3, v4, value))
            }

            /// Sets the [`dilation_h_factor` field](Conv2DOptions#structfield.dilation_h_factor) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_h_factor_as_default(
                self,
            ) -> Conv2DOptionsBuilder<(T0, T1, T2, T3, T4, ::planus::DefaultValue)> {
                self.dilation_h_factor(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5> Conv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Conv2DOptions].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Conv2DOptions>
            where
                Self: ::planus::WriteAsOffset<Conv2DOptions>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T4: ::planus::WriteAsDefault<i32, i32>,
                T5: ::planus::WriteAsDefault<i32, i32>,
            > ::planus::WriteAs<::planus::Offset<Conv2DOptions>>
            for Conv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            type Prepared = ::planus::Offset<Conv2DOptions>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Conv2DOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T4: ::planus::WriteAsDefault<i32, i32>,
                T5: ::planus::WriteAsDefault<i32, i32>,
            > ::planus::WriteAsOptional<::planus::Offset<Conv2DOptions>>
            for Conv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            type Prepared = ::planus::Offset<Conv2DOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Conv2DOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T4: ::planus::WriteAsDefault<i32, i32>,
                T5: ::planus::WriteAsDefault<i32, i32>,
            > ::planus::WriteAsOffset<Conv2DOptions>
            for Conv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Conv2DOptions> {
                let (v0, v1, v2, v3, v4, v5) = &self.0;
                Conv2DOptions::create(builder, v0, v1, v2, v3, v4, v5)
            }
        }

        /// Reference to a deserialized [Conv2DOptions].
        #[derive(Copy, Clone)]
        pub struct Conv2DOptionsRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> Conv2DOptionsRef<'a> {
            /// Getter for the [`padding` field](Conv2DOptions#structfield.padding).
            #[inline]
            pub fn padding(&self) -> ::planus::Result<self::Padding> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "Conv2DOptions", "padding")?
                        .unwrap_or(self::Padding::Same),
                )
            }

            /// Getter for the [`stride_w` field](Conv2DOptions#structfield.stride_w).
            #[inline]
            pub fn stride_w(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0.access(1, "Conv2DOptions", "stride_w")?.unwrap_or(0),
                )
            }

            /// Getter for the [`stride_h` field](Conv2DOptions#structfield.stride_h).
            #[inline]
            pub fn stride_h(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0.access(2, "Conv2DOptions", "stride_h")?.unwrap_or(0),
                )
            }

            /// Getter for the [`fused_activation_function` field](Conv2DOptions#structfield.fused_activation_function).
            #[inline]
            pub fn fused_activation_function(
                &self,
            ) -> ::planus::Result<self::ActivationFunctionType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(3, "Conv2DOptions", "fused_activation_function")?
                        .unwrap_or(self::ActivationFunctionType::None),
                )
            }

            /// Getter for the [`dilation_w_factor` field](Conv2DOptions#structfield.dilation_w_factor).
            #[inline]
            pub fn dilation_w_factor(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(4, "Conv2DOptions", "dilation_w_factor")?
                        .unwrap_or(1),
                )
            }

            /// Getter for the [`dilation_h_factor` field](Conv2DOptions#structfield.dilation_h_factor).
            #[inline]
            pub fn dilation_h_factor(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(5, "Conv2DOptions", "dilation_h_factor")?
                        .unwrap_or(1),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for Conv2DOptionsRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("Conv2DOptionsRef");
                f.field("padding", &self.padding());
                f.field("stride_w", &self.stride_w());
                f.field("stride_h", &self.stride_h());
                f.field(
                    "fused_activation_function",
                    &self.fused_activation_function(),
                );
                f.field("dilation_w_factor", &self.dilation_w_factor());
                f.field("dilation_h_factor", &self.dilation_h_factor());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<Conv2DOptionsRef<'a>> for Conv2DOptions {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: Conv2DOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    padding: ::core::convert::TryInto::try_into(value.padding()?)?,
                    stride_w: ::core::convert::TryInto::try_into(value.stride_w()?)?,
                    stride_h: ::core::convert::TryInto::try_into(value.stride_h()?)?,
                    fused_activation_function: ::core::convert::TryInto::try_into(
                        value.fused_activation_function()?,
                    )?,
                    dilation_w_factor: ::core::convert::TryInto::try_into(
                        value.dilation_w_factor()?,
                    )?,
                    dilation_h_factor: ::core::convert::TryInto::try_into(
                        value.dilation_h_factor()?,
                    )?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for Conv2DOptionsRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for Conv2DOptionsRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[Conv2DOptionsRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Conv2DOptions>> for Conv2DOptions {
            type Value = ::planus::Offset<Conv2DOptions>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Conv2DOptions>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for Conv2DOptionsRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[Conv2DOptionsRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `DepthwiseConv2DOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `DepthwiseConv2DOptions` in the file `schema.fbs:320`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct DepthwiseConv2DOptions {
            /// The field `padding` in the table `DepthwiseConv2DOptions`
            pub padding: self::Padding,
            /// The field `stride_w` in the table `DepthwiseConv2DOptions`
            pub stride_w: i32,
            /// The field `stride_h` in the table `DepthwiseConv2DOptions`
            pub stride_h: i32,
            /// The field `depth_multiplier` in the table `DepthwiseConv2DOptions`
            pub depth_multiplier: i32,
            /// The field `fused_activation_function` in the table `DepthwiseConv2DOptions`
            pub fused_activation_function: self::ActivationFunctionType,
            /// The field `dilation_w_factor` in the table `DepthwiseConv2DOptions`
            pub dilation_w_factor: i32,
            /// The field `dilation_h_factor` in the table `DepthwiseConv2DOptions`
            pub dilation_h_factor: i32,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for DepthwiseConv2DOptions {
            fn default() -> Self {
                Self {
                    padding: self::Padding::Same,
                    stride_w: 0,
                    stride_h: 0,
                    depth_multiplier: 0,
                    fused_activation_function: self::ActivationFunctionType::None,
                    dilation_w_factor: 1,
                    dilation_h_factor: 1,
                }
            }
        }

        impl DepthwiseConv2DOptions {
            /// Creates a [DepthwiseConv2DOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> DepthwiseConv2DOptionsBuilder<()> {
                DepthwiseConv2DOptionsBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_padding: impl ::planus::WriteAsDefault<self::Padding, self::Padding>,
                field_stride_w: impl ::planus::WriteAsDefault<i32, i32>,
                field_stride_h: impl ::planus::WriteAsDefault<i32, i32>,
                field_depth_multiplier: impl ::planus::WriteAsDefault<i32, i32>,
                field_fused_activation_function: impl ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                field_dilation_w_factor: impl ::planus::WriteAsDefault<i32, i32>,
                field_dilation_h_factor: impl ::planus::WriteAsDefault<i32, i32>,
            ) -> ::planus::Offset<Self> {
                let prepared_padding = field_padding.prepare(builder, &self::Padding::Same);
                let prepared_stride_w = field_stride_w.prepare(builder, &0);
                let prepared_stride_h = field_stride_h.prepare(builder, &0);
                let prepared_depth_multiplier = field_depth_multiplier.prepare(builder, &0);
                let prepared_fused_activation_function = field_fused_activation_function
                    .prepare(builder, &self::ActivationFunctionType::None);
                let prepared_dilation_w_factor = field_dilation_w_factor.prepare(builder, &1);
                let prepared_dilation_h_factor = field_dilation_h_factor.prepare(builder, &1);

                let mut table_writer: ::planus::table_writer::TableWriter<18> =
                    ::core::default::Default::default();
                if prepared_stride_w.is_some() {
                    table_writer.write_entry::<i32>(1);
                }
                if prepared_stride_h.is_some() {
                    table_writer.write_entry::<i32>(2);
                }
                if prepared_depth_multiplier.is_some() {
                    table_writer.write_entry::<i32>(3);
                }
                if prepared_dilation_w_factor.is_some() {
                    table_writer.write_entry::<i32>(5);
                }
                if prepared_dilation_h_factor.is_some() {
                    table_writer.write_entry::<i32>(6);
                }
                if prepared_padding.is_some() {
                    table_writer.write_entry::<self::Padding>(0);
                }
                if prepared_fused_activation_function.is_some() {
                    table_writer.write_entry::<self::ActivationFunctionType>(4);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_stride_w) = prepared_stride_w {
                            object_writer.write::<_, _, 4>(&prepared_stride_w);
                        }
                        if let ::core::option::Option::Some(prepared_stride_h) = prepared_stride_h {
                            object_writer.write::<_, _, 4>(&prepared_stride_h);
                        }
                        if let ::core::option::Option::Some(prepared_depth_multiplier) =
                            prepared_depth_multiplier
                        {
                            object_writer.write::<_, _, 4>(&prepared_depth_multiplier);
                        }
                        if let ::core::option::Option::Some(prepared_dilation_w_factor) =
                            prepared_dilation_w_factor
                        {
                            object_writer.write::<_, _, 4>(&prepared_dilation_w_factor);
                        }
                        if let ::core::option::Option::Some(prepared_dilation_h_factor) =
                            prepared_dilation_h_factor
                        {
                            object_writer.write::<_, _, 4>(&prepared_dilation_h_factor);
                        }
                        if let ::core::option::Option::Some(prepared_padding) = prepared_padding {
                            object_writer.write::<_, _, 1>(&prepared_padding);
                        }
                        if let ::core::option::Option::Some(prepared_fused_activation_function) =
                            prepared_fused_activation_function
                        {
                            object_writer.write::<_, _, 1>(&prepared_fused_activation_function);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<DepthwiseConv2DOptions>> for DepthwiseConv2DOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DepthwiseConv2DOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<DepthwiseConv2DOptions>>
            for DepthwiseConv2DOptions
        {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<DepthwiseConv2DOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<DepthwiseConv2DOptions> for DepthwiseConv2DOptions {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DepthwiseConv2DOptions> {
                DepthwiseConv2DOptions::create(
                    builder,
                    self.padding,
                    self.stride_w,
                    self.stride_h,
                    self.depth_multiplier,
                    self.fused_activation_function,
                    self.dilation_w_factor,
                    self.dilation_h_factor,
                )
            }
        }

        /// Builder for serializing an instance of the [DepthwiseConv2DOptions] type.
        ///
        /// Can be created using the [DepthwiseConv2DOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct DepthwiseConv2DOptionsBuilder<State>(State);

        impl DepthwiseConv2DOptionsBuilder<()> {
            /// Setter for the [`padding` field](DepthwiseConv2DOptions#structfield.padding).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn padding<T0>(self, value: T0) -> DepthwiseConv2DOptionsBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
            {
                DepthwiseConv2DOptionsBuilder((value,))
            }

            /// Sets the [`padding` field](DepthwiseConv2DOptions#structfield.padding) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn padding_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(::planus::DefaultValue,)> {
                self.padding(::planus::DefaultValue)
            }
        }

        impl<T0> DepthwiseConv2DOptionsBuilder<(T0,)> {
            /// Setter for the [`stride_w` field](DepthwiseConv2DOptions#structfield.stride_w).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_w<T1>(self, value: T1) -> DepthwiseConv2DOptionsBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0,) = self.0;
                DepthwiseConv2DOptionsBuilder((v0, value))
            }

            /// Sets the [`stride_w` field](DepthwiseConv2DOptions#structfield.stride_w) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_w_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, ::planus::DefaultValue)> {
                self.stride_w(::planus::DefaultValue)
            }
        }

        impl<T0, T1> DepthwiseConv2DOptionsBuilder<(T0, T1)> {
            /// Setter for the [`stride_h` field](DepthwiseConv2DOptions#structfield.stride_h).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_h<T2>(self, value: T2) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1) = self.0;
                DepthwiseConv2DOptionsBuilder((v0, v1, value))
            }

            /// Sets the [`stride_h` field](DepthwiseConv2DOptions#structfield.stride_h) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_h_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, ::planus::DefaultValue)> {
                self.stride_h(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2> DepthwiseConv2DOptionsBuilder<(T0, T1, T2)> {
            /// Setter for the [`depth_multiplier` field](DepthwiseConv2DOptions#structfield.depth_multiplier).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn depth_multiplier<T3>(
                self,
                value: T3,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2) = self.0;
                DepthwiseConv2DOptionsBuilder((v0, v1, v2, value))
            }

            /// Sets the [`depth_multiplier` field](DepthwiseConv2DOptions#structfield.depth_multiplier) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn depth_multiplier_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, ::planus::DefaultValue)> {
                self.depth_multiplier(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`fused_activation_function` field](DepthwiseConv2DOptions#structfield.fused_activation_function).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function<T4>(
                self,
                value: T4,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            {
                let (v0, v1, v2, v3) = self.0;
                DepthwiseConv2DOptionsBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`fused_activation_function` field](DepthwiseConv2DOptions#structfield.fused_activation_function) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, ::planus::DefaultValue)>
            {
                self.fused_activation_function(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4)> {
            /// Setter for the [`dilation_w_factor` field](DepthwiseConv2DOptions#structfield.dilation_w_factor).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_w_factor<T5>(
                self,
                value: T5,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
            where
                T5: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2, v3, v4) = self.0;
                DepthwiseConv2DOptionsBuilder((v0, v1, v2, v3, v4, value))
            }

            /// Sets the [`dilation_w_factor` field](DepthwiseConv2DOptions#structfield.dilation_w_factor) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_w_factor_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, ::planus::DefaultValue)>
            {
                self.dilation_w_factor(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)> {
            /// Setter for the [`dilation_h_factor` field](DepthwiseConv2DOptions#structfield.dilation_h_factor).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_h_factor<T6>(
                self,
                value: T6,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5, T6)>
            where
                T6: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2, v3, v4, v5) = self.0;
                DepthwiseConv2DOptionsBuilder((v0, v1, v2, v3, v4, v5, value))
            }

            /// Sets the [`dilation_h_factor` field](DepthwiseConv2DOptions#structfield.dilation_h_factor) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn dilation_h_factor_as_default(
                self,
            ) -> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5, ::planus::DefaultValue)>
            {
                self.dilation_h_factor(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5, T6> DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5, T6)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [DepthwiseConv2DOptions].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DepthwiseConv2DOptions>
            where
                Self: ::planus::WriteAsOffset<DepthwiseConv2DOptions>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<i32, i32>,
                T4: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T5: ::planus::WriteAsDefault<i32, i32>,
                T6: ::planus::WriteAsDefault<i32, i32>,
            > ::planus::WriteAs<::planus::Offset<DepthwiseConv2DOptions>>
            for DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5, T6)>
        {
            type Prepared = ::planus::Offset<DepthwiseConv2DOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DepthwiseConv2DOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<i32, i32>,
                T4: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T5: ::planus::WriteAsDefault<i32, i32>,
                T6: ::planus::WriteAsDefault<i32, i32>,
            > ::planus::WriteAsOptional<::planus::Offset<DepthwiseConv2DOptions>>
            for DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5, T6)>
        {
            type Prepared = ::planus::Offset<DepthwiseConv2DOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<DepthwiseConv2DOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<i32, i32>,
                T4: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T5: ::planus::WriteAsDefault<i32, i32>,
                T6: ::planus::WriteAsDefault<i32, i32>,
            > ::planus::WriteAsOffset<DepthwiseConv2DOptions>
            for DepthwiseConv2DOptionsBuilder<(T0, T1, T2, T3, T4, T5, T6)>
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<DepthwiseConv2DOptions> {
                let (v0, v1, v2, v3, v4, v5, v6) = &self.0;
                DepthwiseConv2DOptions::create(builder, v0, v1, v2, v3, v4, v5, v6)
            }
        }

        /// Reference to a deserialized [DepthwiseConv2DOptions].
        #[derive(Copy, Clone)]
        pub struct DepthwiseConv2DOptionsRef<'a>(
            #[allow(dead_code)] ::planus::table_reader::Table<'a>,
        );

        impl<'a> DepthwiseConv2DOptionsRef<'a> {
            /// Getter for the [`padding` field](DepthwiseConv2DOptions#structfield.padding).
            #[inline]
            pub fn padding(&self) -> ::planus::Result<self::Padding> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "DepthwiseConv2DOptions", "padding")?
                        .unwrap_or(self::Padding::Same),
                )
            }

            /// Getter for the [`stride_w` field](DepthwiseConv2DOptions#structfield.stride_w).
            #[inline]
            pub fn stride_w(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(1, "DepthwiseConv2DOptions", "stride_w")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`stride_h` field](DepthwiseConv2DOptions#structfield.stride_h).
            #[inline]
            pub fn stride_h(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(2, "DepthwiseConv2DOptions", "stride_h")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`depth_multiplier` field](DepthwiseConv2DOptions#structfield.depth_multiplier).
            #[inline]
            pub fn depth_multiplier(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(3, "DepthwiseConv2DOptions", "depth_multiplier")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`fused_activation_function` field](DepthwiseConv2DOptions#structfield.fused_activation_function).
            #[inline]
            pub fn fused_activation_function(
                &self,
            ) -> ::planus::Result<self::ActivationFunctionType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(4, "DepthwiseConv2DOptions", "fused_activation_function")?
                        .unwrap_or(self::ActivationFunctionType::None),
                )
            }

            /// Getter for the [`dilation_w_factor` field](DepthwiseConv2DOptions#structfield.dilation_w_factor).
            #[inline]
            pub fn dilation_w_factor(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(5, "DepthwiseConv2DOptions", "dilation_w_factor")?
                        .unwrap_or(1),
                )
            }

            /// Getter for the [`dilation_h_factor` field](DepthwiseConv2DOptions#structfield.dilation_h_factor).
            #[inline]
            pub fn dilation_h_factor(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(6, "DepthwiseConv2DOptions", "dilation_h_factor")?
                        .unwrap_or(1),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for DepthwiseConv2DOptionsRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("DepthwiseConv2DOptionsRef");
                f.field("padding", &self.padding());
                f.field("stride_w", &self.stride_w());
                f.field("stride_h", &self.stride_h());
                f.field("depth_multiplier", &self.depth_multiplier());
                f.field(
                    "fused_activation_function",
                    &self.fused_activation_function(),
                );
                f.field("dilation_w_factor", &self.dilation_w_factor());
                f.field("dilation_h_factor", &self.dilation_h_factor());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<DepthwiseConv2DOptionsRef<'a>> for DepthwiseConv2DOptions {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: DepthwiseConv2DOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    padding: ::core::convert::TryInto::try_into(value.padding()?)?,
                    stride_w: ::core::convert::TryInto::try_into(value.stride_w()?)?,
                    stride_h: ::core::convert::TryInto::try_into(value.stride_h()?)?,
                    depth_multiplier: ::core::convert::TryInto::try_into(
                        value.depth_multiplier()?,
                    )?,
                    fused_activation_function: ::core::convert::TryInto::try_into(
                        value.fused_activation_function()?,
                    )?,
                    dilation_w_factor: ::core::convert::TryInto::try_into(
                        value.dilation_w_factor()?,
                    )?,
                    dilation_h_factor: ::core::convert::TryInto::try_into(
                        value.dilation_h_factor()?,
                    )?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for DepthwiseConv2DOptionsRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for DepthwiseConv2DOptionsRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[DepthwiseConv2DOptionsRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<DepthwiseConv2DOptions>>
            for DepthwiseConv2DOptions
        {
            type Value = ::planus::Offset<DepthwiseConv2DOptions>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<DepthwiseConv2DOptions>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for DepthwiseConv2DOptionsRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[DepthwiseConv2DOptionsRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `Pool2DOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Pool2DOptions` in the file `schema.fbs:330`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Pool2DOptions {
            /// The field `padding` in the table `Pool2DOptions`
            pub padding: self::Padding,
            /// The field `stride_w` in the table `Pool2DOptions`
            pub stride_w: i32,
            /// The field `stride_h` in the table `Pool2DOptions`
            pub stride_h: i32,
            /// The field `filter_width` in the table `Pool2DOptions`
            pub filter_width: i32,
            /// The field `filter_height` in the table `Pool2DOptions`
            pub filter_height: i32,
            /// The field `fused_activation_function` in the table `Pool2DOptions`
            pub fused_activation_function: self::ActivationFunctionType,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Pool2DOptions {
            fn default() -> Self {
                Self {
                    padding: self::Padding::Same,
                    stride_w: 0,
                    stride_h: 0,
                    filter_width: 0,
                    filter_height: 0,
                    fused_activation_function: self::ActivationFunctionType::None,
                }
            }
        }

        impl Pool2DOptions {
            /// Creates a [Pool2DOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> Pool2DOptionsBuilder<()> {
                Pool2DOptionsBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_padding: impl ::planus::WriteAsDefault<self::Padding, self::Padding>,
                field_stride_w: impl ::planus::WriteAsDefault<i32, i32>,
                field_stride_h: impl ::planus::WriteAsDefault<i32, i32>,
                field_filter_width: impl ::planus::WriteAsDefault<i32, i32>,
                field_filter_height: impl ::planus::WriteAsDefault<i32, i32>,
                field_fused_activation_function: impl ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            ) -> ::planus::Offset<Self> {
                let prepared_padding = field_padding.prepare(builder, &self::Padding::Same);
                let prepared_stride_w = field_stride_w.prepare(builder, &0);
                let prepared_stride_h = field_stride_h.prepare(builder, &0);
                let prepared_filter_width = field_filter_width.prepare(builder, &0);
                let prepared_filter_height = field_filter_height.prepare(builder, &0);
                let prepared_fused_activation_function = field_fused_activation_function
                    .prepare(builder, &self::ActivationFunctionType::None);

                let mut table_writer: ::planus::table_writer::TableWriter<16> =
                    ::core::default::Default::default();
                if prepared_stride_w.is_some() {
                    table_writer.write_entry::<i32>(1);
                }
                if prepared_stride_h.is_some() {
                    table_writer.write_entry::<i32>(2);
                }
                if prepared_filter_width.is_some() {
                    table_writer.write_entry::<i32>(3);
                }
                if prepared_filter_height.is_some() {
                    table_writer.write_entry::<i32>(4);
                }
                if prepared_padding.is_some() {
                    table_writer.write_entry::<self::Padding>(0);
                }
                if prepared_fused_activation_function.is_some() {
                    table_writer.write_entry::<self::ActivationFunctionType>(5);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_stride_w) = prepared_stride_w {
                            object_writer.write::<_, _, 4>(&prepared_stride_w);
                        }
                        if let ::core::option::Option::Some(prepared_stride_h) = prepared_stride_h {
                            object_writer.write::<_, _, 4>(&prepared_stride_h);
                        }
                        if let ::core::option::Option::Some(prepared_filter_width) =
                            prepared_filter_width
                        {
                            object_writer.write::<_, _, 4>(&prepared_filter_width);
                        }
                        if let ::core::option::Option::Some(prepared_filter_height) =
                            prepared_filter_height
                        {
                            object_writer.write::<_, _, 4>(&prepared_filter_height);
                        }
                        if let ::core::option::Option::Some(prepared_padding) = prepared_padding {
                            object_writer.write::<_, _, 1>(&prepared_padding);
                        }
                        if let ::core::option::Option::Some(prepared_fused_activation_function) =
                            prepared_fused_activation_function
                        {
                            object_writer.write::<_, _, 1>(&prepared_fused_activation_function);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Pool2DOptions>> for Pool2DOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Pool2DOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Pool2DOptions>> for Pool2DOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Pool2DOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Pool2DOptions> for Pool2DOptions {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Pool2DOptions> {
                Pool2DOptions::create(
                    builder,
                    self.padding,
                    self.stride_w,
                    self.stride_h,
                    self.filter_width,
                    self.filter_height,
                    self.fused_activation_function,
                )
            }
        }

        /// Builder for serializing an instance of the [Pool2DOptions] type.
        ///
        /// Can be created using the [Pool2DOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct Pool2DOptionsBuilder<State>(State);

        impl Pool2DOptionsBuilder<()> {
            /// Setter for the [`padding` field](Pool2DOptions#structfield.padding).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn padding<T0>(self, value: T0) -> Pool2DOptionsBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
            {
                Pool2DOptionsBuilder((value,))
            }

            /// Sets the [`padding` field](Pool2DOptions#structfield.padding) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn padding_as_default(self) -> Pool2DOptionsBuilder<(::planus::DefaultValue,)> {
                self.padding(::planus::DefaultValue)
            }
        }

        impl<T0> Pool2DOptionsBuilder<(T0,)> {
            /// Setter for the [`stride_w` field](Pool2DOptions#structfield.stride_w).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_w<T1>(self, value: T1) -> Pool2DOptionsBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0,) = self.0;
                Pool2DOptionsBuilder((v0, value))
            }

            /// Sets the [`stride_w` field](Pool2DOptions#structfield.stride_w) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_w_as_default(self) -> Pool2DOptionsBuilder<(T0, ::planus::DefaultValue)> {
                self.stride_w(::planus::DefaultValue)
            }
        }

        impl<T0, T1> Pool2DOptionsBuilder<(T0, T1)> {
            /// Setter for the [`stride_h` field](Pool2DOptions#structfield.stride_h).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_h<T2>(self, value: T2) -> Pool2DOptionsBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1) = self.0;
                Pool2DOptionsBuilder((v0, v1, value))
            }

            /// Sets the [`stride_h` field](Pool2DOptions#structfield.stride_h) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn stride_h_as_default(
                self,
            ) -> Pool2DOptionsBuilder<(T0, T1, ::planus::DefaultValue)> {
                self.stride_h(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2> Pool2DOptionsBuilder<(T0, T1, T2)> {
            /// Setter for the [`filter_width` field](Pool2DOptions#structfield.filter_width).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn filter_width<T3>(self, value: T3) -> Pool2DOptionsBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2) = self.0;
                Pool2DOptionsBuilder((v0, v1, v2, value))
            }

            /// Sets the [`filter_width` field](Pool2DOptions#structfield.filter_width) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn filter_width_as_default(
                self,
            ) -> Pool2DOptionsBuilder<(T0, T1, T2, ::planus::DefaultValue)> {
                self.filter_width(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3> Pool2DOptionsBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`filter_height` field](Pool2DOptions#structfield.filter_height).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn filter_height<T4>(self, value: T4) -> Pool2DOptionsBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1, v2, v3) = self.0;
                Pool2DOptionsBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`filter_height` field](Pool2DOptions#structfield.filter_height) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn filter_height_as_default(
                self,
            ) -> Pool2DOptionsBuilder<(T0, T1, T2, T3, ::planus::DefaultValue)> {
                self.filter_height(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4> Pool2DOptionsBuilder<(T0, T1, T2, T3, T4)> {
            /// Setter for the [`fused_activation_function` field](Pool2DOptions#structfield.fused_activation_function).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function<T5>(
                self,
                value: T5,
            ) -> Pool2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
            where
                T5: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            {
                let (v0, v1, v2, v3, v4) = self.0;
                Pool2DOptionsBuilder((v0, v1, v2, v3, v4, value))
            }

            /// Sets the [`fused_activation_function` field](Pool2DOptions#structfield.fused_activation_function) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function_as_default(
                self,
            ) -> Pool2DOptionsBuilder<(T0, T1, T2, T3, T4, ::planus::DefaultValue)> {
                self.fused_activation_function(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5> Pool2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Pool2DOptions].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Pool2DOptions>
            where
                Self: ::planus::WriteAsOffset<Pool2DOptions>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<i32, i32>,
                T4: ::planus::WriteAsDefault<i32, i32>,
                T5: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            > ::planus::WriteAs<::planus::Offset<Pool2DOptions>>
            for Pool2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            type Prepared = ::planus::Offset<Pool2DOptions>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Pool2DOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<i32, i32>,
                T4: ::planus::WriteAsDefault<i32, i32>,
                T5: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            > ::planus::WriteAsOptional<::planus::Offset<Pool2DOptions>>
            for Pool2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            type Prepared = ::planus::Offset<Pool2DOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Pool2DOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<self::Padding, self::Padding>,
                T1: ::planus::WriteAsDefault<i32, i32>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<i32, i32>,
                T4: ::planus::WriteAsDefault<i32, i32>,
                T5: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            > ::planus::WriteAsOffset<Pool2DOptions>
            for Pool2DOptionsBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Pool2DOptions> {
                let (v0, v1, v2, v3, v4, v5) = &self.0;
                Pool2DOptions::create(builder, v0, v1, v2, v3, v4, v5)
            }
        }

        /// Reference to a deserialized [Pool2DOptions].
        #[derive(Copy, Clone)]
        pub struct Pool2DOptionsRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> Pool2DOptionsRef<'a> {
            /// Getter for the [`padding` field](Pool2DOptions#structfield.padding).
            #[inline]
            pub fn padding(&self) -> ::planus::Result<self::Padding> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "Pool2DOptions", "padding")?
                        .unwrap_or(self::Padding::Same),
                )
            }

            /// Getter for the [`stride_w` field](Pool2DOptions#structfield.stride_w).
            #[inline]
            pub fn stride_w(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0.access(1, "Pool2DOptions", "stride_w")?.unwrap_or(0),
                )
            }

            /// Getter for the [`stride_h` field](Pool2DOptions#structfield.stride_h).
            #[inline]
            pub fn stride_h(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0.access(2, "Pool2DOptions", "stride_h")?.unwrap_or(0),
                )
            }

            /// Getter for the [`filter_width` field](Pool2DOptions#structfield.filter_width).
            #[inline]
            pub fn filter_width(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(3, "Pool2DOptions", "filter_width")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`filter_height` field](Pool2DOptions#structfield.filter_height).
            #[inline]
            pub fn filter_height(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(4, "Pool2DOptions", "filter_height")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`fused_activation_function` field](Pool2DOptions#structfield.fused_activation_function).
            #[inline]
            pub fn fused_activation_function(
                &self,
            ) -> ::planus::Result<self::ActivationFunctionType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(5, "Pool2DOptions", "fused_activation_function")?
                        .unwrap_or(self::ActivationFunctionType::None),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for Pool2DOptionsRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("Pool2DOptionsRef");
                f.field("padding", &self.padding());
                f.field("stride_w", &self.stride_w());
                f.field("stride_h", &self.stride_h());
                f.field("filter_width", &self.filter_width());
                f.field("filter_height", &self.filter_height());
                f.field(
                    "fused_activation_function",
                    &self.fused_activation_function(),
                );
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<Pool2DOptionsRef<'a>> for Pool2DOptions {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: Pool2DOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    padding: ::core::convert::TryInto::try_into(value.padding()?)?,
                    stride_w: ::core::convert::TryInto::try_into(value.stride_w()?)?,
                    stride_h: ::core::convert::TryInto::try_into(value.stride_h()?)?,
                    filter_width: ::core::convert::TryInto::try_into(value.filter_width()?)?,
                    filter_height: ::core::convert::TryInto::try_into(value.filter_height()?)?,
                    fused_activation_function: ::core::convert::TryInto::try_into(
                        value.fused_activation_function()?,
                    )?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for Pool2DOptionsRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for Pool2DOptionsRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[Pool2DOptionsRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Pool2DOptions>> for Pool2DOptions {
            type Value = ::planus::Offset<Pool2DOptions>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Pool2DOptions>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for Pool2DOptionsRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[Pool2DOptionsRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `ConcatenationOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `ConcatenationOptions` in the file `schema.fbs:339`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct ConcatenationOptions {
            /// The field `axis` in the table `ConcatenationOptions`
            pub axis: i32,
            /// The field `fused_activation_function` in the table `ConcatenationOptions`
            pub fused_activation_function: self::ActivationFunctionType,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for ConcatenationOptions {
            fn default() -> Self {
                Self {
                    axis: 0,
                    fused_activation_function: self::ActivationFunctionType::None,
                }
            }
        }

        impl ConcatenationOptions {
            /// Creates a [ConcatenationOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> ConcatenationOptionsBuilder<()> {
                ConcatenationOptionsBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_axis: impl ::planus::WriteAsDefault<i32, i32>,
                field_fused_activation_function: impl ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            ) -> ::planus::Offset<Self> {
                let prepared_axis = field_axis.prepare(builder, &0);
                let prepared_fused_activation_function = field_fused_activation_function
                    .prepare(builder, &self::ActivationFunctionType::None);

                let mut table_writer: ::planus::table_writer::TableWriter<8> =
                    ::core::default::Default::default();
                if prepared_axis.is_some() {
                    table_writer.write_entry::<i32>(0);
                }
                if prepared_fused_activation_function.is_some() {
                    table_writer.write_entry::<self::ActivationFunctionType>(1);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_axis) = prepared_axis {
                            object_writer.write::<_, _, 4>(&prepared_axis);
                        }
                        if let ::core::option::Option::Some(prepared_fused_activation_function) =
                            prepared_fused_activation_function
                        {
                            object_writer.write::<_, _, 1>(&prepared_fused_activation_function);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<ConcatenationOptions>> for ConcatenationOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ConcatenationOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<ConcatenationOptions>> for ConcatenationOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<ConcatenationOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<ConcatenationOptions> for ConcatenationOptions {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ConcatenationOptions> {
                ConcatenationOptions::create(builder, self.axis, self.fused_activation_function)
            }
        }

        /// Builder for serializing an instance of the [ConcatenationOptions] type.
        ///
        /// Can be created using the [ConcatenationOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct ConcatenationOptionsBuilder<State>(State);

        impl ConcatenationOptionsBuilder<()> {
            /// Setter for the [`axis` field](ConcatenationOptions#structfield.axis).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn axis<T0>(self, value: T0) -> ConcatenationOptionsBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<i32, i32>,
            {
                ConcatenationOptionsBuilder((value,))
            }

            /// Sets the [`axis` field](ConcatenationOptions#structfield.axis) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn axis_as_default(self) -> ConcatenationOptionsBuilder<(::planus::DefaultValue,)> {
                self.axis(::planus::DefaultValue)
            }
        }

        impl<T0> ConcatenationOptionsBuilder<(T0,)> {
            /// Setter for the [`fused_activation_function` field](ConcatenationOptions#structfield.fused_activation_function).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function<T1>(
                self,
                value: T1,
            ) -> ConcatenationOptionsBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            {
                let (v0,) = self.0;
                ConcatenationOptionsBuilder((v0, value))
            }

            /// Sets the [`fused_activation_function` field](ConcatenationOptions#structfield.fused_activation_function) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function_as_default(
                self,
            ) -> ConcatenationOptionsBuilder<(T0, ::planus::DefaultValue)> {
                self.fused_activation_function(::planus::DefaultValue)
            }
        }

        impl<T0, T1> ConcatenationOptionsBuilder<(T0, T1)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [ConcatenationOptions].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ConcatenationOptions>
            where
                Self: ::planus::WriteAsOffset<ConcatenationOptions>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<i32, i32>,
                T1: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            > ::planus::WriteAs<::planus::Offset<ConcatenationOptions>>
            for ConcatenationOptionsBuilder<(T0, T1)>
        {
            type Prepared = ::planus::Offset<ConcatenationOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ConcatenationOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<i32, i32>,
                T1: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            > ::planus::WriteAsOptional<::planus::Offset<ConcatenationOptions>>
            for ConcatenationOptionsBuilder<(T0, T1)>
        {
            type Prepared = ::planus::Offset<ConcatenationOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<ConcatenationOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<i32, i32>,
                T1: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            > ::planus::WriteAsOffset<ConcatenationOptions>
            for ConcatenationOptionsBuilder<(T0, T1)>
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ConcatenationOptions> {
                let (v0, v1) = &self.0;
                ConcatenationOptions::create(builder, v0, v1)
            }
        }

        /// Reference to a deserialized [ConcatenationOptions].
        #[derive(Copy, Clone)]
        pub struct ConcatenationOptionsRef<'a>(
            #[allow(dead_code)] ::planus::table_reader::Table<'a>,
        );

        impl<'a> ConcatenationOptionsRef<'a> {
            /// Getter for the [`axis` field](ConcatenationOptions#structfield.axis).
            #[inline]
            pub fn axis(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "ConcatenationOptions", "axis")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`fused_activation_function` field](ConcatenationOptions#structfield.fused_activation_function).
            #[inline]
            pub fn fused_activation_function(
                &self,
            ) -> ::planus::Result<self::ActivationFunctionType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(1, "ConcatenationOptions", "fused_activation_function")?
                        .unwrap_or(self::ActivationFunctionType::None),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for ConcatenationOptionsRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("ConcatenationOptionsRef");
                f.field("axis", &self.axis());
                f.field(
                    "fused_activation_function",
                    &self.fused_activation_function(),
                );
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<ConcatenationOptionsRef<'a>> for ConcatenationOptions {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: ConcatenationOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    axis: ::core::convert::TryInto::try_into(value.axis()?)?,
                    fused_activation_function: ::core::convert::TryInto::try_into(
                        value.fused_activation_function()?,
                    )?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for ConcatenationOptionsRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for ConcatenationOptionsRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[ConcatenationOptionsRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<ConcatenationOptions>> for ConcatenationOptions {
            type Value = ::planus::Offset<ConcatenationOptions>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<ConcatenationOptions>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for ConcatenationOptionsRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[ConcatenationOptionsRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `AddOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `AddOptions` in the file `schema.fbs:344`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct AddOptions {
            /// The field `fused_activation_function` in the table `AddOptions`
            pub fused_activation_function: self::ActivationFunctionType,
            /// The field `pot_scale_int16` in the table `AddOptions`
            pub pot_scale_int16: bool,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for AddOptions {
            fn default() -> Self {
                Self {
                    fused_activation_function: self::ActivationFunctionType::None,
                    pot_scale_int16: true,
                }
            }
        }

        impl AddOptions {
            /// Creates a [AddOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> AddOptionsBuilder<()> {
                AddOptionsBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_fused_activation_function: impl ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                field_pot_scale_int16: impl ::planus::WriteAsDefault<bool, bool>,
            ) -> ::planus::Offset<Self> {
                let prepared_fused_activation_function = field_fused_activation_function
                    .prepare(builder, &self::ActivationFunctionType::None);
                let prepared_pot_scale_int16 = field_pot_scale_int16.prepare(builder, &true);

                let mut table_writer: ::planus::table_writer::TableWriter<8> =
                    ::core::default::Default::default();
                if prepared_fused_activation_function.is_some() {
                    table_writer.write_entry::<self::ActivationFunctionType>(0);
                }
                if prepared_pot_scale_int16.is_some() {
                    table_writer.write_entry::<bool>(1);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_fused_activation_function) =
                            prepared_fused_activation_function
                        {
                            object_writer.write::<_, _, 1>(&prepared_fused_activation_function);
                        }
                        if let ::core::option::Option::Some(prepared_pot_scale_int16) =
                            prepared_pot_scale_int16
                        {
                            object_writer.write::<_, _, 1>(&prepared_pot_scale_int16);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<AddOptions>> for AddOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<AddOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<AddOptions>> for AddOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<AddOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<AddOptions> for AddOptions {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<AddOptions> {
                AddOptions::create(
                    builder,
                    self.fused_activation_function,
                    self.pot_scale_int16,
                )
            }
        }

        /// Builder for serializing an instance of the [AddOptions] type.
        ///
        /// Can be created using the [AddOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct AddOptionsBuilder<State>(State);

        impl AddOptionsBuilder<()> {
            /// Setter for the [`fused_activation_function` field](AddOptions#structfield.fused_activation_function).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function<T0>(self, value: T0) -> AddOptionsBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
            {
                AddOptionsBuilder((value,))
            }

            /// Sets the [`fused_activation_function` field](AddOptions#structfield.fused_activation_function) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn fused_activation_function_as_default(
                self,
            ) -> AddOptionsBuilder<(::planus::DefaultValue,)> {
                self.fused_activation_function(::planus::DefaultValue)
            }
        }

        impl<T0> AddOptionsBuilder<(T0,)> {
            /// Setter for the [`pot_scale_int16` field](AddOptions#structfield.pot_scale_int16).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn pot_scale_int16<T1>(self, value: T1) -> AddOptionsBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<bool, bool>,
            {
                let (v0,) = self.0;
                AddOptionsBuilder((v0, value))
            }

            /// Sets the [`pot_scale_int16` field](AddOptions#structfield.pot_scale_int16) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn pot_scale_int16_as_default(
                self,
            ) -> AddOptionsBuilder<(T0, ::planus::DefaultValue)> {
                self.pot_scale_int16(::planus::DefaultValue)
            }
        }

        impl<T0, T1> AddOptionsBuilder<(T0, T1)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [AddOptions].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<AddOptions>
            where
                Self: ::planus::WriteAsOffset<AddOptions>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T1: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAs<::planus::Offset<AddOptions>> for AddOptionsBuilder<(T0, T1)>
        {
            type Prepared = ::planus::Offset<AddOptions>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<AddOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T1: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAsOptional<::planus::Offset<AddOptions>>
            for AddOptionsBuilder<(T0, T1)>
        {
            type Prepared = ::planus::Offset<AddOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<AddOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<
                    self::ActivationFunctionType,
                    self::ActivationFunctionType,
                >,
                T1: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAsOffset<AddOptions> for AddOptionsBuilder<(T0, T1)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<AddOptions> {
                let (v0, v1) = &self.0;
                AddOptions::create(builder, v0, v1)
            }
        }

        /// Reference to a deserialized [AddOptions].
        #[derive(Copy, Clone)]
        pub struct AddOptionsRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> AddOptionsRef<'a> {
            /// Getter for the [`fused_activation_function` field](AddOptions#structfield.fused_activation_function).
            #[inline]
            pub fn fused_activation_function(
                &self,
            ) -> ::planus::Result<self::ActivationFunctionType> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "AddOptions", "fused_activation_function")?
                        .unwrap_or(self::ActivationFunctionType::None),
                )
            }

            /// Getter for the [`pot_scale_int16` field](AddOptions#structfield.pot_scale_int16).
            #[inline]
            pub fn pot_scale_int16(&self) -> ::planus::Result<bool> {
                ::core::result::Result::Ok(
                    self.0
                        .access(1, "AddOptions", "pot_scale_int16")?
                        .unwrap_or(true),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for AddOptionsRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("AddOptionsRef");
                f.field(
                    "fused_activation_function",
                    &self.fused_activation_function(),
                );
                f.field("pot_scale_int16", &self.pot_scale_int16());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<AddOptionsRef<'a>> for AddOptions {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: AddOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    fused_activation_function: ::core::convert::TryInto::try_into(
                        value.fused_activation_function()?,
                    )?,
                    pot_scale_int16: ::core::convert::TryInto::try_into(value.pot_scale_int16()?)?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for AddOptionsRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for AddOptionsRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[AddOptionsRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<AddOptions>> for AddOptions {
            type Value = ::planus::Offset<AddOptions>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<AddOptions>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for AddOptionsRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[AddOptionsRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `ResizeBilinearOptions` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `ResizeBilinearOptions` in the file `schema.fbs:349`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct ResizeBilinearOptions {
            /// The field `align_corners` in the table `ResizeBilinearOptions`
            pub align_corners: bool,
            /// The field `half_pixel_centers` in the table `ResizeBilinearOptions`
            pub half_pixel_centers: bool,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for ResizeBilinearOptions {
            fn default() -> Self {
                Self {
                    align_corners: false,
                    half_pixel_centers: false,
                }
            }
        }

        impl ResizeBilinearOptions {
            /// Creates a [ResizeBilinearOptionsBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> ResizeBilinearOptionsBuilder<()> {
                ResizeBilinearOptionsBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_align_corners: impl ::planus::WriteAsDefault<bool, bool>,
                field_half_pixel_centers: impl ::planus::WriteAsDefault<bool, bool>,
            ) -> ::planus::Offset<Self> {
                let prepared_align_corners = field_align_corners.prepare(builder, &false);
                let prepared_half_pixel_centers = field_half_pixel_centers.prepare(builder, &false);

                let mut table_writer: ::planus::table_writer::TableWriter<12> =
                    ::core::default::Default::default();
                if prepared_align_corners.is_some() {
                    table_writer.write_entry::<bool>(2);
                }
                if prepared_half_pixel_centers.is_some() {
                    table_writer.write_entry::<bool>(3);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_align_corners) =
                            prepared_align_corners
                        {
                            object_writer.write::<_, _, 1>(&prepared_align_corners);
                        }
                        if let ::core::option::Option::Some(prepared_half_pixel_centers) =
                            prepared_half_pixel_centers
                        {
                            object_writer.write::<_, _, 1>(&prepared_half_pixel_centers);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<ResizeBilinearOptions>> for ResizeBilinearOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ResizeBilinearOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<ResizeBilinearOptions>> for ResizeBilinearOptions {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<ResizeBilinearOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<ResizeBilinearOptions> for ResizeBilinearOptions {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ResizeBilinearOptions> {
                ResizeBilinearOptions::create(builder, self.align_corners, self.half_pixel_centers)
            }
        }

        /// Builder for serializing an instance of the [ResizeBilinearOptions] type.
        ///
        /// Can be created using the [ResizeBilinearOptions::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct ResizeBilinearOptionsBuilder<State>(State);

        impl ResizeBilinearOptionsBuilder<()> {
            /// Setter for the [`align_corners` field](ResizeBilinearOptions#structfield.align_corners).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn align_corners<T0>(self, value: T0) -> ResizeBilinearOptionsBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<bool, bool>,
            {
                ResizeBilinearOptionsBuilder((value,))
            }

            /// Sets the [`align_corners` field](ResizeBilinearOptions#structfield.align_corners) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn align_corners_as_default(
                self,
            ) -> ResizeBilinearOptionsBuilder<(::planus::DefaultValue,)> {
                self.align_corners(::planus::DefaultValue)
            }
        }

        impl<T0> ResizeBilinearOptionsBuilder<(T0,)> {
            /// Setter for the [`half_pixel_centers` field](ResizeBilinearOptions#structfield.half_pixel_centers).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn half_pixel_centers<T1>(self, value: T1) -> ResizeBilinearOptionsBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<bool, bool>,
            {
                let (v0,) = self.0;
                ResizeBilinearOptionsBuilder((v0, value))
            }

            /// Sets the [`half_pixel_centers` field](ResizeBilinearOptions#structfield.half_pixel_centers) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn half_pixel_centers_as_default(
                self,
            ) -> ResizeBilinearOptionsBuilder<(T0, ::planus::DefaultValue)> {
                self.half_pixel_centers(::planus::DefaultValue)
            }
        }

        impl<T0, T1> ResizeBilinearOptionsBuilder<(T0, T1)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [ResizeBilinearOptions].
            #[inline]
            pub fn finish(
                self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ResizeBilinearOptions>
            where
                Self: ::planus::WriteAsOffset<ResizeBilinearOptions>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<bool, bool>,
                T1: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAs<::planus::Offset<ResizeBilinearOptions>>
            for ResizeBilinearOptionsBuilder<(T0, T1)>
        {
            type Prepared = ::planus::Offset<ResizeBilinearOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ResizeBilinearOptions> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<bool, bool>,
                T1: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAsOptional<::planus::Offset<ResizeBilinearOptions>>
            for ResizeBilinearOptionsBuilder<(T0, T1)>
        {
            type Prepared = ::planus::Offset<ResizeBilinearOptions>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<ResizeBilinearOptions>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<bool, bool>,
                T1: ::planus::WriteAsDefault<bool, bool>,
            > ::planus::WriteAsOffset<ResizeBilinearOptions>
            for ResizeBilinearOptionsBuilder<(T0, T1)>
        {
            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::planus::Offset<ResizeBilinearOptions> {
                let (v0, v1) = &self.0;
                ResizeBilinearOptions::create(builder, v0, v1)
            }
        }

        /// Reference to a deserialized [ResizeBilinearOptions].
        #[derive(Copy, Clone)]
        pub struct ResizeBilinearOptionsRef<'a>(
            #[allow(dead_code)] ::planus::table_reader::Table<'a>,
        );

        impl<'a> ResizeBilinearOptionsRef<'a> {
            /// Getter for the [`align_corners` field](ResizeBilinearOptions#structfield.align_corners).
            #[inline]
            pub fn align_corners(&self) -> ::planus::Result<bool> {
                ::core::result::Result::Ok(
                    self.0
                        .access(2, "ResizeBilinearOptions", "align_corners")?
                        .unwrap_or(false),
                )
            }

            /// Getter for the [`half_pixel_centers` field](ResizeBilinearOptions#structfield.half_pixel_centers).
            #[inline]
            pub fn half_pixel_centers(&self) -> ::planus::Result<bool> {
                ::core::result::Result::Ok(
                    self.0
                        .access(3, "ResizeBilinearOptions", "half_pixel_centers")?
                        .unwrap_or(false),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for ResizeBilinearOptionsRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("ResizeBilinearOptionsRef");
                f.field("align_corners", &self.align_corners());
                f.field("half_pixel_centers", &self.half_pixel_centers());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<ResizeBilinearOptionsRef<'a>> for ResizeBilinearOptions {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: ResizeBilinearOptionsRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    align_corners: ::core::convert::TryInto::try_into(value.align_corners()?)?,
                    half_pixel_centers: ::core::convert::TryInto::try_into(
                        value.half_pixel_centers()?,
                    )?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for ResizeBilinearOptionsRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for ResizeBilinearOptionsRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[ResizeBilinearOptionsRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<ResizeBilinearOptions>>
            for ResizeBilinearOptions
        {
            type Value = ::planus::Offset<ResizeBilinearOptions>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<ResizeBilinearOptions>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for ResizeBilinearOptionsRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[ResizeBilinearOptionsRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `OperatorCode` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `OperatorCode` in the file `schema.fbs:356`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct OperatorCode {
            /// The field `deprecated_builtin_code` in the table `OperatorCode`
            pub deprecated_builtin_code: i8,
            /// The field `custom_code` in the table `OperatorCode`
            pub custom_code: ::core::option::Option<::planus::alloc::string::String>,
            /// The field `version` in the table `OperatorCode`
            pub version: i32,
            /// The field `builtin_code` in the table `OperatorCode`
            pub builtin_code: self::BuiltinOperator,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for OperatorCode {
            fn default() -> Self {
                Self {
                    deprecated_builtin_code: 0,
                    custom_code: ::core::default::Default::default(),
                    version: 1,
                    builtin_code: self::BuiltinOperator::Add,
                }
            }
        }

        impl OperatorCode {
            /// Creates a [OperatorCodeBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> OperatorCodeBuilder<()> {
                OperatorCodeBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_deprecated_builtin_code: impl ::planus::WriteAsDefault<i8, i8>,
                field_custom_code: impl ::planus::WriteAsOptional<
                    ::planus::Offset<::core::primitive::str>,
                >,
                field_version: impl ::planus::WriteAsDefault<i32, i32>,
                field_builtin_code: impl ::planus::WriteAsDefault<
                    self::BuiltinOperator,
                    self::BuiltinOperator,
                >,
            ) -> ::planus::Offset<Self> {
                let prepared_deprecated_builtin_code =
                    field_deprecated_builtin_code.prepare(builder, &0);
                let prepared_custom_code = field_custom_code.prepare(builder);
                let prepared_version = field_version.prepare(builder, &1);
                let prepared_builtin_code =
                    field_builtin_code.prepare(builder, &self::BuiltinOperator::Add);

                let mut table_writer: ::planus::table_writer::TableWriter<12> =
                    ::core::default::Default::default();
                if prepared_custom_code.is_some() {
                    table_writer.write_entry::<::planus::Offset<str>>(1);
                }
                if prepared_version.is_some() {
                    table_writer.write_entry::<i32>(2);
                }
                if prepared_builtin_code.is_some() {
                    table_writer.write_entry::<self::BuiltinOperator>(3);
                }
                if prepared_deprecated_builtin_code.is_some() {
                    table_writer.write_entry::<i8>(0);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_custom_code) =
                            prepared_custom_code
                        {
                            object_writer.write::<_, _, 4>(&prepared_custom_code);
                        }
                        if let ::core::option::Option::Some(prepared_version) = prepared_version {
                            object_writer.write::<_, _, 4>(&prepared_version);
                        }
                        if let ::core::option::Option::Some(prepared_builtin_code) =
                            prepared_builtin_code
                        {
                            object_writer.write::<_, _, 4>(&prepared_builtin_code);
                        }
                        if let ::core::option::Option::Some(prepared_deprecated_builtin_code) =
                            prepared_deprecated_builtin_code
                        {
                            object_writer.write::<_, _, 1>(&prepared_deprecated_builtin_code);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<OperatorCode>> for OperatorCode {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<OperatorCode> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<OperatorCode>> for OperatorCode {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<OperatorCode>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<OperatorCode> for OperatorCode {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<OperatorCode> {
                OperatorCode::create(
                    builder,
                    self.deprecated_builtin_code,
                    &self.custom_code,
                    self.version,
                    self.builtin_code,
                )
            }
        }

        /// Builder for serializing an instance of the [OperatorCode] type.
        ///
        /// Can be created using the [OperatorCode::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct OperatorCodeBuilder<State>(State);

        impl OperatorCodeBuilder<()> {
            /// Setter for the [`deprecated_builtin_code` field](OperatorCode#structfield.deprecated_builtin_code).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn deprecated_builtin_code<T0>(self, value: T0) -> OperatorCodeBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<i8, i8>,
            {
                OperatorCodeBuilder((value,))
            }

            /// Sets the [`deprecated_builtin_code` field](OperatorCode#structfield.deprecated_builtin_code) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn deprecated_builtin_code_as_default(
                self,
            ) -> OperatorCodeBuilder<(::planus::DefaultValue,)> {
                self.deprecated_builtin_code(::planus::DefaultValue)
            }
        }

        impl<T0> OperatorCodeBuilder<(T0,)> {
            /// Setter for the [`custom_code` field](OperatorCode#structfield.custom_code).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn custom_code<T1>(self, value: T1) -> OperatorCodeBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            {
                let (v0,) = self.0;
                OperatorCodeBuilder((v0, value))
            }

            /// Sets the [`custom_code` field](OperatorCode#structfield.custom_code) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn custom_code_as_null(self) -> OperatorCodeBuilder<(T0, ())> {
                self.custom_code(())
            }
        }

        impl<T0, T1> OperatorCodeBuilder<(T0, T1)> {
            /// Setter for the [`version` field](OperatorCode#structfield.version).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn version<T2>(self, value: T2) -> OperatorCodeBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsDefault<i32, i32>,
            {
                let (v0, v1) = self.0;
                OperatorCodeBuilder((v0, v1, value))
            }

            /// Sets the [`version` field](OperatorCode#structfield.version) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn version_as_default(
                self,
            ) -> OperatorCodeBuilder<(T0, T1, ::planus::DefaultValue)> {
                self.version(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2> OperatorCodeBuilder<(T0, T1, T2)> {
            /// Setter for the [`builtin_code` field](OperatorCode#structfield.builtin_code).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn builtin_code<T3>(self, value: T3) -> OperatorCodeBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsDefault<self::BuiltinOperator, self::BuiltinOperator>,
            {
                let (v0, v1, v2) = self.0;
                OperatorCodeBuilder((v0, v1, v2, value))
            }

            /// Sets the [`builtin_code` field](OperatorCode#structfield.builtin_code) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn builtin_code_as_default(
                self,
            ) -> OperatorCodeBuilder<(T0, T1, T2, ::planus::DefaultValue)> {
                self.builtin_code(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3> OperatorCodeBuilder<(T0, T1, T2, T3)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [OperatorCode].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<OperatorCode>
            where
                Self: ::planus::WriteAsOffset<OperatorCode>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<i8, i8>,
                T1: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<self::BuiltinOperator, self::BuiltinOperator>,
            > ::planus::WriteAs<::planus::Offset<OperatorCode>>
            for OperatorCodeBuilder<(T0, T1, T2, T3)>
        {
            type Prepared = ::planus::Offset<OperatorCode>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<OperatorCode> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<i8, i8>,
                T1: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<self::BuiltinOperator, self::BuiltinOperator>,
            > ::planus::WriteAsOptional<::planus::Offset<OperatorCode>>
            for OperatorCodeBuilder<(T0, T1, T2, T3)>
        {
            type Prepared = ::planus::Offset<OperatorCode>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<OperatorCode>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<i8, i8>,
                T1: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T2: ::planus::WriteAsDefault<i32, i32>,
                T3: ::planus::WriteAsDefault<self::BuiltinOperator, self::BuiltinOperator>,
            > ::planus::WriteAsOffset<OperatorCode> for OperatorCodeBuilder<(T0, T1, T2, T3)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<OperatorCode> {
                let (v0, v1, v2, v3) = &self.0;
                OperatorCode::create(builder, v0, v1, v2, v3)
            }
        }

        /// Reference to a deserialized [OperatorCode].
        #[derive(Copy, Clone)]
        pub struct OperatorCodeRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> OperatorCodeRef<'a> {
            /// Getter for the [`deprecated_builtin_code` field](OperatorCode#structfield.deprecated_builtin_code).
            #[inline]
            pub fn deprecated_builtin_code(&self) -> ::planus::Result<i8> {
                ::core::result::Result::Ok(
                    self.0
                        .access(0, "OperatorCode", "deprecated_builtin_code")?
                        .unwrap_or(0),
                )
            }

            /// Getter for the [`custom_code` field](OperatorCode#structfield.custom_code).
            #[inline]
            pub fn custom_code(
                &self,
            ) -> ::planus::Result<::core::option::Option<&'a ::core::primitive::str>> {
                self.0.access(1, "OperatorCode", "custom_code")
            }

            /// Getter for the [`version` field](OperatorCode#structfield.version).
            #[inline]
            pub fn version(&self) -> ::planus::Result<i32> {
                ::core::result::Result::Ok(
                    self.0.access(2, "OperatorCode", "version")?.unwrap_or(1),
                )
            }

            /// Getter for the [`builtin_code` field](OperatorCode#structfield.builtin_code).
            #[inline]
            pub fn builtin_code(&self) -> ::planus::Result<self::BuiltinOperator> {
                ::core::result::Result::Ok(
                    self.0
                        .access(3, "OperatorCode", "builtin_code")?
                        .unwrap_or(self::BuiltinOperator::Add),
                )
            }
        }

        impl<'a> ::core::fmt::Debug for OperatorCodeRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("OperatorCodeRef");
                f.field("deprecated_builtin_code", &self.deprecated_builtin_code());
                if let ::core::option::Option::Some(field_custom_code) =
                    self.custom_code().transpose()
                {
                    f.field("custom_code", &field_custom_code);
                }
                f.field("version", &self.version());
                f.field("builtin_code", &self.builtin_code());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<OperatorCodeRef<'a>> for OperatorCode {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: OperatorCodeRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    deprecated_builtin_code: ::core::convert::TryInto::try_into(
                        value.deprecated_builtin_code()?,
                    )?,
                    custom_code: value.custom_code()?.map(::core::convert::Into::into),
                    version: ::core::convert::TryInto::try_into(value.version()?)?,
                    builtin_code: ::core::convert::TryInto::try_into(value.builtin_code()?)?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for OperatorCodeRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for OperatorCodeRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location(
                        "[OperatorCodeRef]",
                        "get",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<OperatorCode>> for OperatorCode {
            type Value = ::planus::Offset<OperatorCode>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<OperatorCode>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for OperatorCodeRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[OperatorCodeRef]", "read_as_root", 0)
                })
            }
        }

        /// The enum `CustomOptionsFormat` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Enum `CustomOptionsFormat` in the file `schema.fbs:363`
        #[derive(
            Copy,
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[repr(i8)]
        pub enum CustomOptionsFormat {
            /// The variant `FLEXBUFFERS` in the enum `CustomOptionsFormat`
            Flexbuffers = 0,
        }

        impl CustomOptionsFormat {
            /// Array containing all valid variants of CustomOptionsFormat
            pub const ENUM_VALUES: [Self; 1] = [Self::Flexbuffers];
        }

        impl ::core::convert::TryFrom<i8> for CustomOptionsFormat {
            type Error = ::planus::errors::UnknownEnumTagKind;
            #[inline]
            fn try_from(
                value: i8,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTagKind> {
                #[allow(clippy::match_single_binding)]
                match value {
                    0 => ::core::result::Result::Ok(CustomOptionsFormat::Flexbuffers),

                    _ => ::core::result::Result::Err(::planus::errors::UnknownEnumTagKind {
                        tag: value as i128,
                    }),
                }
            }
        }

        impl ::core::convert::From<CustomOptionsFormat> for i8 {
            #[inline]
            fn from(value: CustomOptionsFormat) -> Self {
                value as i8
            }
        }

        /// # Safety
        /// The Planus compiler correctly calculates `ALIGNMENT` and `SIZE`.
        unsafe impl ::planus::Primitive for CustomOptionsFormat {
            const ALIGNMENT: usize = 1;
            const SIZE: usize = 1;
        }

        impl ::planus::WriteAsPrimitive<CustomOptionsFormat> for CustomOptionsFormat {
            #[inline]
            fn write<const N: usize>(&self, cursor: ::planus::Cursor<'_, N>, buffer_position: u32) {
                (*self as i8).write(cursor, buffer_position);
            }
        }

        impl ::planus::WriteAs<CustomOptionsFormat> for CustomOptionsFormat {
            type Prepared = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> CustomOptionsFormat {
                *self
            }
        }

        impl ::planus::WriteAsDefault<CustomOptionsFormat, CustomOptionsFormat> for CustomOptionsFormat {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
                default: &CustomOptionsFormat,
            ) -> ::core::option::Option<CustomOptionsFormat> {
                if self == default {
                    ::core::option::Option::None
                } else {
                    ::core::option::Option::Some(*self)
                }
            }
        }

        impl ::planus::WriteAsOptional<CustomOptionsFormat> for CustomOptionsFormat {
            type Prepared = Self;

            #[inline]
            fn prepare(
                &self,
                _builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<CustomOptionsFormat> {
                ::core::option::Option::Some(*self)
            }
        }

        impl<'buf> ::planus::TableRead<'buf> for CustomOptionsFormat {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                let n: i8 = ::planus::TableRead::from_buffer(buffer, offset)?;
                ::core::result::Result::Ok(::core::convert::TryInto::try_into(n)?)
            }
        }

        impl<'buf> ::planus::VectorReadInner<'buf> for CustomOptionsFormat {
            type Error = ::planus::errors::UnknownEnumTag;
            const STRIDE: usize = 1;
            #[inline]
            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'buf>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::UnknownEnumTag> {
                let value = unsafe { *buffer.buffer.get_unchecked(offset) as i8 };
                let value: ::core::result::Result<Self, _> =
                    ::core::convert::TryInto::try_into(value);
                value.map_err(|error_kind| {
                    error_kind.with_error_location(
                        "CustomOptionsFormat",
                        "VectorRead::from_buffer",
                        buffer.offset_from_start,
                    )
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<CustomOptionsFormat> for CustomOptionsFormat {
            const STRIDE: usize = 1;

            type Value = Self;

            #[inline]
            fn prepare(&self, _builder: &mut ::planus::Builder) -> Self {
                *self
            }

            #[inline]
            unsafe fn write_values(
                values: &[Self],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 1];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - i as u32,
                    );
                }
            }
        }

        /// The table `Operator` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Operator` in the file `schema.fbs:367`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Operator {
            /// The field `opcode_index` in the table `Operator`
            pub opcode_index: u32,
            /// The field `inputs` in the table `Operator`
            pub inputs: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `outputs` in the table `Operator`
            pub outputs: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `builtin_options` in the table `Operator`
            pub builtin_options: ::core::option::Option<self::BuiltinOptions>,
            /// The field `custom_options` in the table `Operator`
            pub custom_options: ::core::option::Option<::planus::alloc::vec::Vec<u8>>,
            /// The field `custom_options_format` in the table `Operator`
            pub custom_options_format: self::CustomOptionsFormat,
            /// The field `mutating_variable_inputs` in the table `Operator`
            pub mutating_variable_inputs: ::core::option::Option<::planus::alloc::vec::Vec<bool>>,
            /// The field `intermediates` in the table `Operator`
            pub intermediates: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Operator {
            fn default() -> Self {
                Self {
                    opcode_index: 0,
                    inputs: ::core::default::Default::default(),
                    outputs: ::core::default::Default::default(),
                    builtin_options: ::core::default::Default::default(),
                    custom_options: ::core::default::Default::default(),
                    custom_options_format: self::CustomOptionsFormat::Flexbuffers,
                    mutating_variable_inputs: ::core::default::Default::default(),
                    intermediates: ::core::default::Default::default(),
                }
            }
        }

        impl Operator {
            /// Creates a [OperatorBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> OperatorBuilder<()> {
                OperatorBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_opcode_index: impl ::planus::WriteAsDefault<u32, u32>,
                field_inputs: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_outputs: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_builtin_options: impl ::planus::WriteAsOptionalUnion<self::BuiltinOptions>,
                field_custom_options: impl ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                field_custom_options_format: impl ::planus::WriteAsDefault<
                    self::CustomOptionsFormat,
                    self::CustomOptionsFormat,
                >,
                field_mutating_variable_inputs: impl ::planus::WriteAsOptional<::planus::Offset<[bool]>>,
                field_intermediates: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            ) -> ::planus::Offset<Self> {
                let prepared_opcode_index = field_opcode_index.prepare(builder, &0);
                let prepared_inputs = field_inputs.prepare(builder);
                let prepared_outputs = field_outputs.prepare(builder);
                let prepared_builtin_options = field_builtin_options.prepare(builder);
                let prepared_custom_options = field_custom_options.prepare(builder);
                let prepared_custom_options_format = field_custom_options_format
                    .prepare(builder, &self::CustomOptionsFormat::Flexbuffers);
                let prepared_mutating_variable_inputs =
                    field_mutating_variable_inputs.prepare(builder);
                let prepared_intermediates = field_intermediates.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<22> =
                    ::core::default::Default::default();
                if prepared_opcode_index.is_some() {
                    table_writer.write_entry::<u32>(0);
                }
                if prepared_inputs.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(1);
                }
                if prepared_outputs.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(2);
                }
                if prepared_builtin_options.is_some() {
                    table_writer.write_entry::<::planus::Offset<self::BuiltinOptions>>(4);
                }
                if prepared_custom_options.is_some() {
                    table_writer.write_entry::<::planus::Offset<[u8]>>(5);
                }
                if prepared_mutating_variable_inputs.is_some() {
                    table_writer.write_entry::<::planus::Offset<[bool]>>(7);
                }
                if prepared_intermediates.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(8);
                }
                if prepared_builtin_options.is_some() {
                    table_writer.write_entry::<u8>(3);
                }
                if prepared_custom_options_format.is_some() {
                    table_writer.write_entry::<self::CustomOptionsFormat>(6);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_opcode_index) =
                            prepared_opcode_index
                        {
                            object_writer.write::<_, _, 4>(&prepared_opcode_index);
                        }
                        if let ::core::option::Option::Some(prepared_inputs) = prepared_inputs {
                            object_writer.write::<_, _, 4>(&prepared_inputs);
                        }
                        if let ::core::option::Option::Some(prepared_outputs) = prepared_outputs {
                            object_writer.write::<_, _, 4>(&prepared_outputs);
                        }
                        if let ::core::option::Option::Some(prepared_builtin_options) =
                            prepared_builtin_options
                        {
                            object_writer.write::<_, _, 4>(&prepared_builtin_options.offset());
                        }
                        if let ::core::option::Option::Some(prepared_custom_options) =
                            prepared_custom_options
                        {
                            object_writer.write::<_, _, 4>(&prepared_custom_options);
                        }
                        if let ::core::option::Option::Some(prepared_mutating_variable_inputs) =
                            prepared_mutating_variable_inputs
                        {
                            object_writer.write::<_, _, 4>(&prepared_mutating_variable_inputs);
                        }
                        if let ::core::option::Option::Some(prepared_intermediates) =
                            prepared_intermediates
                        {
                            object_writer.write::<_, _, 4>(&prepared_intermediates);
                        }
                        if let ::core::option::Option::Some(prepared_builtin_options) =
                            prepared_builtin_options
                        {
                            object_writer.write::<_, _, 1>(&prepared_builtin_options.tag());
                        }
                        if let ::core::option::Option::Some(prepared_custom_options_format) =
                            prepared_custom_options_format
                        {
                            object_writer.write::<_, _, 1>(&prepared_custom_options_format);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Operator>> for Operator {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Operator> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Operator>> for Operator {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Operator>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Operator> for Operator {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Operator> {
                Operator::create(
                    builder,
                    self.opcode_index,
                    &self.inputs,
                    &self.outputs,
                    &self.builtin_options,
                    &self.custom_options,
                    self.custom_options_format,
                    &self.mutating_variable_inputs,
                    &self.intermediates,
                )
            }
        }

        /// Builder for serializing an instance of the [Operator] type.
        ///
        /// Can be created using the [Operator::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct OperatorBuilder<State>(State);

        impl OperatorBuilder<()> {
            /// Setter for the [`opcode_index` field](Operator#structfield.opcode_index).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn opcode_index<T0>(self, value: T0) -> OperatorBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<u32, u32>,
            {
                OperatorBuilder((value,))
            }

            /// Sets the [`opcode_index` field](Operator#structfield.opcode_index) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn opcode_index_as_default(self) -> OperatorBuilder<(::planus::DefaultValue,)> {
                self.opcode_index(::planus::DefaultValue)
            }
        }

        impl<T0> OperatorBuilder<(T0,)> {
            /// Setter for the [`inputs` field](Operator#structfield.inputs).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn inputs<T1>(self, value: T1) -> OperatorBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0,) = self.0;
                OperatorBuilder((v0, value))
            }

            /// Sets the [`inputs` field](Operator#structfield.inputs) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn inputs_as_null(self) -> OperatorBuilder<(T0, ())> {
                self.inputs(())
            }
        }

        impl<T0, T1> OperatorBuilder<(T0, T1)> {
            /// Setter for the [`outputs` field](Operator#structfield.outputs).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn outputs<T2>(self, value: T2) -> OperatorBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0, v1) = self.0;
                OperatorBuilder((v0, v1, value))
            }

            /// Sets the [`outputs` field](Operator#structfield.outputs) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn outputs_as_null(self) -> OperatorBuilder<(T0, T1, ())> {
                self.outputs(())
            }
        }

        impl<T0, T1, T2> OperatorBuilder<(T0, T1, T2)> {
            /// Setter for the [`builtin_options` field](Operator#structfield.builtin_options).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn builtin_options<T3>(self, value: T3) -> OperatorBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsOptionalUnion<self::BuiltinOptions>,
            {
                let (v0, v1, v2) = self.0;
                OperatorBuilder((v0, v1, v2, value))
            }

            /// Sets the [`builtin_options` field](Operator#structfield.builtin_options) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn builtin_options_as_null(self) -> OperatorBuilder<(T0, T1, T2, ())> {
                self.builtin_options(())
            }
        }

        impl<T0, T1, T2, T3> OperatorBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`custom_options` field](Operator#structfield.custom_options).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn custom_options<T4>(self, value: T4) -> OperatorBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
            {
                let (v0, v1, v2, v3) = self.0;
                OperatorBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`custom_options` field](Operator#structfield.custom_options) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn custom_options_as_null(self) -> OperatorBuilder<(T0, T1, T2, T3, ())> {
                self.custom_options(())
            }
        }

        impl<T0, T1, T2, T3, T4> OperatorBuilder<(T0, T1, T2, T3, T4)> {
            /// Setter for the [`custom_options_format` field](Operator#structfield.custom_options_format).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn custom_options_format<T5>(
                self,
                value: T5,
            ) -> OperatorBuilder<(T0, T1, T2, T3, T4, T5)>
            where
                T5: ::planus::WriteAsDefault<self::CustomOptionsFormat, self::CustomOptionsFormat>,
            {
                let (v0, v1, v2, v3, v4) = self.0;
                OperatorBuilder((v0, v1, v2, v3, v4, value))
            }

            /// Sets the [`custom_options_format` field](Operator#structfield.custom_options_format) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn custom_options_format_as_default(
                self,
            ) -> OperatorBuilder<(T0, T1, T2, T3, T4, ::planus::DefaultValue)> {
                self.custom_options_format(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2, T3, T4, T5> OperatorBuilder<(T0, T1, T2, T3, T4, T5)> {
            /// Setter for the [`mutating_variable_inputs` field](Operator#structfield.mutating_variable_inputs).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn mutating_variable_inputs<T6>(
                self,
                value: T6,
            ) -> OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6)>
            where
                T6: ::planus::WriteAsOptional<::planus::Offset<[bool]>>,
            {
                let (v0, v1, v2, v3, v4, v5) = self.0;
                OperatorBuilder((v0, v1, v2, v3, v4, v5, value))
            }

            /// Sets the [`mutating_variable_inputs` field](Operator#structfield.mutating_variable_inputs) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn mutating_variable_inputs_as_null(
                self,
            ) -> OperatorBuilder<(T0, T1, T2, T3, T4, T5, ())> {
                self.mutating_variable_inputs(())
            }
        }

        impl<T0, T1, T2, T3, T4, T5, T6> OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6)> {
            /// Setter for the [`intermediates` field](Operator#structfield.intermediates).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn intermediates<T7>(
                self,
                value: T7,
            ) -> OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)>
            where
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0, v1, v2, v3, v4, v5, v6) = self.0;
                OperatorBuilder((v0, v1, v2, v3, v4, v5, v6, value))
            }

            /// Sets the [`intermediates` field](Operator#structfield.intermediates) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn intermediates_as_null(
                self,
            ) -> OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6, ())> {
                self.intermediates(())
            }
        }

        impl<T0, T1, T2, T3, T4, T5, T6, T7> OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Operator].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Operator>
            where
                Self: ::planus::WriteAsOffset<Operator>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<u32, u32>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T3: ::planus::WriteAsOptionalUnion<self::BuiltinOptions>,
                T4: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                T5: ::planus::WriteAsDefault<self::CustomOptionsFormat, self::CustomOptionsFormat>,
                T6: ::planus::WriteAsOptional<::planus::Offset<[bool]>>,
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            > ::planus::WriteAs<::planus::Offset<Operator>>
            for OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)>
        {
            type Prepared = ::planus::Offset<Operator>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Operator> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<u32, u32>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T3: ::planus::WriteAsOptionalUnion<self::BuiltinOptions>,
                T4: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                T5: ::planus::WriteAsDefault<self::CustomOptionsFormat, self::CustomOptionsFormat>,
                T6: ::planus::WriteAsOptional<::planus::Offset<[bool]>>,
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            > ::planus::WriteAsOptional<::planus::Offset<Operator>>
            for OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)>
        {
            type Prepared = ::planus::Offset<Operator>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Operator>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<u32, u32>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T3: ::planus::WriteAsOptionalUnion<self::BuiltinOptions>,
                T4: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                T5: ::planus::WriteAsDefault<self::CustomOptionsFormat, self::CustomOptionsFormat>,
                T6: ::planus::WriteAsOptional<::planus::Offset<[bool]>>,
                T7: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            > ::planus::WriteAsOffset<Operator>
            for OperatorBuilder<(T0, T1, T2, T3, T4, T5, T6, T7)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Operator> {
                let (v0, v1, v2, v3, v4, v5, v6, v7) = &self.0;
                Operator::create(builder, v0, v1, v2, v3, v4, v5, v6, v7)
            }
        }

        /// Reference to a deserialized [Operator].
        #[derive(Copy, Clone)]
        pub struct OperatorRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> OperatorRef<'a> {
            /// Getter for the [`opcode_index` field](Operator#structfield.opcode_index).
            #[inline]
            pub fn opcode_index(&self) -> ::planus::Result<u32> {
                ::core::result::Result::Ok(
                    self.0.access(0, "Operator", "opcode_index")?.unwrap_or(0),
                )
            }

            /// Getter for the [`inputs` field](Operator#structfield.inputs).
            #[inline]
            pub fn inputs(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(1, "Operator", "inputs")
            }

            /// Getter for the [`outputs` field](Operator#structfield.outputs).
            #[inline]
            pub fn outputs(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(2, "Operator", "outputs")
            }

            /// Getter for the [`builtin_options` field](Operator#structfield.builtin_options).
            #[inline]
            pub fn builtin_options(
                &self,
            ) -> ::planus::Result<::core::option::Option<self::BuiltinOptionsRef<'a>>> {
                self.0.access_union(3, "Operator", "builtin_options")
            }

            /// Getter for the [`custom_options` field](Operator#structfield.custom_options).
            #[inline]
            pub fn custom_options(&self) -> ::planus::Result<::core::option::Option<&'a [u8]>> {
                self.0.access(5, "Operator", "custom_options")
            }

            /// Getter for the [`custom_options_format` field](Operator#structfield.custom_options_format).
            #[inline]
            pub fn custom_options_format(&self) -> ::planus::Result<self::CustomOptionsFormat> {
                ::core::result::Result::Ok(
                    self.0
                        .access(6, "Operator", "custom_options_format")?
                        .unwrap_or(self::CustomOptionsFormat::Flexbuffers),
                )
            }

            /// Getter for the [`mutating_variable_inputs` field](Operator#structfield.mutating_variable_inputs).
            #[inline]
            pub fn mutating_variable_inputs(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, bool>>> {
                self.0.access(7, "Operator", "mutating_variable_inputs")
            }

            /// Getter for the [`intermediates` field](Operator#structfield.intermediates).
            #[inline]
            pub fn intermediates(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(8, "Operator", "intermediates")
            }
        }

        impl<'a> ::core::fmt::Debug for OperatorRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("OperatorRef");
                f.field("opcode_index", &self.opcode_index());
                if let ::core::option::Option::Some(field_inputs) = self.inputs().transpose() {
                    f.field("inputs", &field_inputs);
                }
                if let ::core::option::Option::Some(field_outputs) = self.outputs().transpose() {
                    f.field("outputs", &field_outputs);
                }
                if let ::core::option::Option::Some(field_builtin_options) =
                    self.builtin_options().transpose()
                {
                    f.field("builtin_options", &field_builtin_options);
                }
                if let ::core::option::Option::Some(field_custom_options) =
                    self.custom_options().transpose()
                {
                    f.field("custom_options", &field_custom_options);
                }
                f.field("custom_options_format", &self.custom_options_format());
                if let ::core::option::Option::Some(field_mutating_variable_inputs) =
                    self.mutating_variable_inputs().transpose()
                {
                    f.field("mutating_variable_inputs", &field_mutating_variable_inputs);
                }
                if let ::core::option::Option::Some(field_intermediates) =
                    self.intermediates().transpose()
                {
                    f.field("intermediates", &field_intermediates);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<OperatorRef<'a>> for Operator {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: OperatorRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    opcode_index: ::core::convert::TryInto::try_into(value.opcode_index()?)?,
                    inputs: if let ::core::option::Option::Some(inputs) = value.inputs()? {
                        ::core::option::Option::Some(inputs.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    outputs: if let ::core::option::Option::Some(outputs) = value.outputs()? {
                        ::core::option::Option::Some(outputs.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    builtin_options: if let ::core::option::Option::Some(builtin_options) =
                        value.builtin_options()?
                    {
                        ::core::option::Option::Some(::core::convert::TryInto::try_into(
                            builtin_options,
                        )?)
                    } else {
                        ::core::option::Option::None
                    },
                    custom_options: value.custom_options()?.map(|v| v.to_vec()),
                    custom_options_format: ::core::convert::TryInto::try_into(
                        value.custom_options_format()?,
                    )?,
                    mutating_variable_inputs: if let ::core::option::Option::Some(
                        mutating_variable_inputs,
                    ) = value.mutating_variable_inputs()?
                    {
                        ::core::option::Option::Some(mutating_variable_inputs.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    intermediates: if let ::core::option::Option::Some(intermediates) =
                        value.intermediates()?
                    {
                        ::core::option::Option::Some(intermediates.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for OperatorRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for OperatorRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location("[OperatorRef]", "get", buffer.offset_from_start)
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Operator>> for Operator {
            type Value = ::planus::Offset<Operator>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Operator>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for OperatorRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[OperatorRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `SubGraph` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `SubGraph` in the file `schema.fbs:378`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct SubGraph {
            /// The field `tensors` in the table `SubGraph`
            pub tensors: ::core::option::Option<::planus::alloc::vec::Vec<self::Tensor>>,
            /// The field `inputs` in the table `SubGraph`
            pub inputs: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `outputs` in the table `SubGraph`
            pub outputs: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
            /// The field `operators` in the table `SubGraph`
            pub operators: ::core::option::Option<::planus::alloc::vec::Vec<self::Operator>>,
            /// The field `name` in the table `SubGraph`
            pub name: ::core::option::Option<::planus::alloc::string::String>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for SubGraph {
            fn default() -> Self {
                Self {
                    tensors: ::core::default::Default::default(),
                    inputs: ::core::default::Default::default(),
                    outputs: ::core::default::Default::default(),
                    operators: ::core::default::Default::default(),
                    name: ::core::default::Default::default(),
                }
            }
        }

        impl SubGraph {
            /// Creates a [SubGraphBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> SubGraphBuilder<()> {
                SubGraphBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_tensors: impl ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::Tensor>]>,
                >,
                field_inputs: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_outputs: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                field_operators: impl ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::Operator>]>,
                >,
                field_name: impl ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            ) -> ::planus::Offset<Self> {
                let prepared_tensors = field_tensors.prepare(builder);
                let prepared_inputs = field_inputs.prepare(builder);
                let prepared_outputs = field_outputs.prepare(builder);
                let prepared_operators = field_operators.prepare(builder);
                let prepared_name = field_name.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<14> =
                    ::core::default::Default::default();
                if prepared_tensors.is_some() {
                    table_writer
                        .write_entry::<::planus::Offset<[::planus::Offset<self::Tensor>]>>(0);
                }
                if prepared_inputs.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(1);
                }
                if prepared_outputs.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(2);
                }
                if prepared_operators.is_some() {
                    table_writer
                        .write_entry::<::planus::Offset<[::planus::Offset<self::Operator>]>>(3);
                }
                if prepared_name.is_some() {
                    table_writer.write_entry::<::planus::Offset<str>>(4);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_tensors) = prepared_tensors {
                            object_writer.write::<_, _, 4>(&prepared_tensors);
                        }
                        if let ::core::option::Option::Some(prepared_inputs) = prepared_inputs {
                            object_writer.write::<_, _, 4>(&prepared_inputs);
                        }
                        if let ::core::option::Option::Some(prepared_outputs) = prepared_outputs {
                            object_writer.write::<_, _, 4>(&prepared_outputs);
                        }
                        if let ::core::option::Option::Some(prepared_operators) = prepared_operators
                        {
                            object_writer.write::<_, _, 4>(&prepared_operators);
                        }
                        if let ::core::option::Option::Some(prepared_name) = prepared_name {
                            object_writer.write::<_, _, 4>(&prepared_name);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<SubGraph>> for SubGraph {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<SubGraph> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<SubGraph>> for SubGraph {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<SubGraph>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<SubGraph> for SubGraph {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<SubGraph> {
                SubGraph::create(
                    builder,
                    &self.tensors,
                    &self.inputs,
                    &self.outputs,
                    &self.operators,
                    &self.name,
                )
            }
        }

        /// Builder for serializing an instance of the [SubGraph] type.
        ///
        /// Can be created using the [SubGraph::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct SubGraphBuilder<State>(State);

        impl SubGraphBuilder<()> {
            /// Setter for the [`tensors` field](SubGraph#structfield.tensors).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn tensors<T0>(self, value: T0) -> SubGraphBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Tensor>]>>,
            {
                SubGraphBuilder((value,))
            }

            /// Sets the [`tensors` field](SubGraph#structfield.tensors) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn tensors_as_null(self) -> SubGraphBuilder<((),)> {
                self.tensors(())
            }
        }

        impl<T0> SubGraphBuilder<(T0,)> {
            /// Setter for the [`inputs` field](SubGraph#structfield.inputs).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn inputs<T1>(self, value: T1) -> SubGraphBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0,) = self.0;
                SubGraphBuilder((v0, value))
            }

            /// Sets the [`inputs` field](SubGraph#structfield.inputs) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn inputs_as_null(self) -> SubGraphBuilder<(T0, ())> {
                self.inputs(())
            }
        }

        impl<T0, T1> SubGraphBuilder<(T0, T1)> {
            /// Setter for the [`outputs` field](SubGraph#structfield.outputs).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn outputs<T2>(self, value: T2) -> SubGraphBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0, v1) = self.0;
                SubGraphBuilder((v0, v1, value))
            }

            /// Sets the [`outputs` field](SubGraph#structfield.outputs) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn outputs_as_null(self) -> SubGraphBuilder<(T0, T1, ())> {
                self.outputs(())
            }
        }

        impl<T0, T1, T2> SubGraphBuilder<(T0, T1, T2)> {
            /// Setter for the [`operators` field](SubGraph#structfield.operators).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn operators<T3>(self, value: T3) -> SubGraphBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Operator>]>>,
            {
                let (v0, v1, v2) = self.0;
                SubGraphBuilder((v0, v1, v2, value))
            }

            /// Sets the [`operators` field](SubGraph#structfield.operators) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn operators_as_null(self) -> SubGraphBuilder<(T0, T1, T2, ())> {
                self.operators(())
            }
        }

        impl<T0, T1, T2, T3> SubGraphBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`name` field](SubGraph#structfield.name).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn name<T4>(self, value: T4) -> SubGraphBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            {
                let (v0, v1, v2, v3) = self.0;
                SubGraphBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`name` field](SubGraph#structfield.name) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn name_as_null(self) -> SubGraphBuilder<(T0, T1, T2, T3, ())> {
                self.name(())
            }
        }

        impl<T0, T1, T2, T3, T4> SubGraphBuilder<(T0, T1, T2, T3, T4)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [SubGraph].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<SubGraph>
            where
                Self: ::planus::WriteAsOffset<SubGraph>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Tensor>]>>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T3: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Operator>]>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            > ::planus::WriteAs<::planus::Offset<SubGraph>>
            for SubGraphBuilder<(T0, T1, T2, T3, T4)>
        {
            type Prepared = ::planus::Offset<SubGraph>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<SubGraph> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Tensor>]>>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T3: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Operator>]>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            > ::planus::WriteAsOptional<::planus::Offset<SubGraph>>
            for SubGraphBuilder<(T0, T1, T2, T3, T4)>
        {
            type Prepared = ::planus::Offset<SubGraph>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<SubGraph>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Tensor>]>>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
                T3: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Operator>]>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            > ::planus::WriteAsOffset<SubGraph> for SubGraphBuilder<(T0, T1, T2, T3, T4)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<SubGraph> {
                let (v0, v1, v2, v3, v4) = &self.0;
                SubGraph::create(builder, v0, v1, v2, v3, v4)
            }
        }

        /// Reference to a deserialized [SubGraph].
        #[derive(Copy, Clone)]
        pub struct SubGraphRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> SubGraphRef<'a> {
            /// Getter for the [`tensors` field](SubGraph#structfield.tensors).
            #[inline]
            pub fn tensors(
                &self,
            ) -> ::planus::Result<
                ::core::option::Option<::planus::Vector<'a, ::planus::Result<self::TensorRef<'a>>>>,
            > {
                self.0.access(0, "SubGraph", "tensors")
            }

            /// Getter for the [`inputs` field](SubGraph#structfield.inputs).
            #[inline]
            pub fn inputs(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(1, "SubGraph", "inputs")
            }

            /// Getter for the [`outputs` field](SubGraph#structfield.outputs).
            #[inline]
            pub fn outputs(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(2, "SubGraph", "outputs")
            }

            /// Getter for the [`operators` field](SubGraph#structfield.operators).
            #[inline]
            pub fn operators(
                &self,
            ) -> ::planus::Result<
                ::core::option::Option<
                    ::planus::Vector<'a, ::planus::Result<self::OperatorRef<'a>>>,
                >,
            > {
                self.0.access(3, "SubGraph", "operators")
            }

            /// Getter for the [`name` field](SubGraph#structfield.name).
            #[inline]
            pub fn name(
                &self,
            ) -> ::planus::Result<::core::option::Option<&'a ::core::primitive::str>> {
                self.0.access(4, "SubGraph", "name")
            }
        }

        impl<'a> ::core::fmt::Debug for SubGraphRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("SubGraphRef");
                if let ::core::option::Option::Some(field_tensors) = self.tensors().transpose() {
                    f.field("tensors", &field_tensors);
                }
                if let ::core::option::Option::Some(field_inputs) = self.inputs().transpose() {
                    f.field("inputs", &field_inputs);
                }
                if let ::core::option::Option::Some(field_outputs) = self.outputs().transpose() {
                    f.field("outputs", &field_outputs);
                }
                if let ::core::option::Option::Some(field_operators) = self.operators().transpose()
                {
                    f.field("operators", &field_operators);
                }
                if let ::core::option::Option::Some(field_name) = self.name().transpose() {
                    f.field("name", &field_name);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<SubGraphRef<'a>> for SubGraph {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: SubGraphRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    tensors: if let ::core::option::Option::Some(tensors) = value.tensors()? {
                        ::core::option::Option::Some(tensors.to_vec_result()?)
                    } else {
                        ::core::option::Option::None
                    },
                    inputs: if let ::core::option::Option::Some(inputs) = value.inputs()? {
                        ::core::option::Option::Some(inputs.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    outputs: if let ::core::option::Option::Some(outputs) = value.outputs()? {
                        ::core::option::Option::Some(outputs.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                    operators: if let ::core::option::Option::Some(operators) = value.operators()? {
                        ::core::option::Option::Some(operators.to_vec_result()?)
                    } else {
                        ::core::option::Option::None
                    },
                    name: value.name()?.map(::core::convert::Into::into),
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for SubGraphRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for SubGraphRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location("[SubGraphRef]", "get", buffer.offset_from_start)
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<SubGraph>> for SubGraph {
            type Value = ::planus::Offset<SubGraph>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<SubGraph>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for SubGraphRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[SubGraphRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `Buffer` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Buffer` in the file `schema.fbs:386`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Buffer {
            /// The field `data` in the table `Buffer`
            pub data: ::core::option::Option<::planus::alloc::vec::Vec<u8>>,
            /// The field `offset` in the table `Buffer`
            pub offset: u64,
            /// The field `size` in the table `Buffer`
            pub size: u64,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Buffer {
            fn default() -> Self {
                Self {
                    data: ::core::default::Default::default(),
                    offset: 0,
                    size: 0,
                }
            }
        }

        impl Buffer {
            /// Creates a [BufferBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> BufferBuilder<()> {
                BufferBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_data: impl ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                field_offset: impl ::planus::WriteAsDefault<u64, u64>,
                field_size: impl ::planus::WriteAsDefault<u64, u64>,
            ) -> ::planus::Offset<Self> {
                let prepared_data = field_data.prepare(builder);
                let prepared_offset = field_offset.prepare(builder, &0);
                let prepared_size = field_size.prepare(builder, &0);

                let mut table_writer: ::planus::table_writer::TableWriter<10> =
                    ::core::default::Default::default();
                if prepared_data.is_some() {
                    table_writer.write_entry::<::planus::Offset<[u8]>>(0);
                }
                if prepared_offset.is_some() {
                    table_writer.write_entry::<u64>(1);
                }
                if prepared_size.is_some() {
                    table_writer.write_entry::<u64>(2);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_data) = prepared_data {
                            object_writer.write::<_, _, 4>(&prepared_data);
                        }
                        if let ::core::option::Option::Some(prepared_offset) = prepared_offset {
                            object_writer.write::<_, _, 8>(&prepared_offset);
                        }
                        if let ::core::option::Option::Some(prepared_size) = prepared_size {
                            object_writer.write::<_, _, 8>(&prepared_size);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Buffer>> for Buffer {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Buffer> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Buffer>> for Buffer {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Buffer>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Buffer> for Buffer {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Buffer> {
                Buffer::create(builder, &self.data, self.offset, self.size)
            }
        }

        /// Builder for serializing an instance of the [Buffer] type.
        ///
        /// Can be created using the [Buffer::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct BufferBuilder<State>(State);

        impl BufferBuilder<()> {
            /// Setter for the [`data` field](Buffer#structfield.data).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn data<T0>(self, value: T0) -> BufferBuilder<(T0,)>
            where
                T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
            {
                BufferBuilder((value,))
            }

            /// Sets the [`data` field](Buffer#structfield.data) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn data_as_null(self) -> BufferBuilder<((),)> {
                self.data(())
            }
        }

        impl<T0> BufferBuilder<(T0,)> {
            /// Setter for the [`offset` field](Buffer#structfield.offset).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn offset<T1>(self, value: T1) -> BufferBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsDefault<u64, u64>,
            {
                let (v0,) = self.0;
                BufferBuilder((v0, value))
            }

            /// Sets the [`offset` field](Buffer#structfield.offset) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn offset_as_default(self) -> BufferBuilder<(T0, ::planus::DefaultValue)> {
                self.offset(::planus::DefaultValue)
            }
        }

        impl<T0, T1> BufferBuilder<(T0, T1)> {
            /// Setter for the [`size` field](Buffer#structfield.size).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn size<T2>(self, value: T2) -> BufferBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsDefault<u64, u64>,
            {
                let (v0, v1) = self.0;
                BufferBuilder((v0, v1, value))
            }

            /// Sets the [`size` field](Buffer#structfield.size) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn size_as_default(self) -> BufferBuilder<(T0, T1, ::planus::DefaultValue)> {
                self.size(::planus::DefaultValue)
            }
        }

        impl<T0, T1, T2> BufferBuilder<(T0, T1, T2)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Buffer].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Buffer>
            where
                Self: ::planus::WriteAsOffset<Buffer>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                T1: ::planus::WriteAsDefault<u64, u64>,
                T2: ::planus::WriteAsDefault<u64, u64>,
            > ::planus::WriteAs<::planus::Offset<Buffer>> for BufferBuilder<(T0, T1, T2)>
        {
            type Prepared = ::planus::Offset<Buffer>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Buffer> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                T1: ::planus::WriteAsDefault<u64, u64>,
                T2: ::planus::WriteAsDefault<u64, u64>,
            > ::planus::WriteAsOptional<::planus::Offset<Buffer>> for BufferBuilder<(T0, T1, T2)>
        {
            type Prepared = ::planus::Offset<Buffer>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Buffer>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsOptional<::planus::Offset<[u8]>>,
                T1: ::planus::WriteAsDefault<u64, u64>,
                T2: ::planus::WriteAsDefault<u64, u64>,
            > ::planus::WriteAsOffset<Buffer> for BufferBuilder<(T0, T1, T2)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Buffer> {
                let (v0, v1, v2) = &self.0;
                Buffer::create(builder, v0, v1, v2)
            }
        }

        /// Reference to a deserialized [Buffer].
        #[derive(Copy, Clone)]
        pub struct BufferRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> BufferRef<'a> {
            /// Getter for the [`data` field](Buffer#structfield.data).
            #[inline]
            pub fn data(&self) -> ::planus::Result<::core::option::Option<&'a [u8]>> {
                self.0.access(0, "Buffer", "data")
            }

            /// Getter for the [`offset` field](Buffer#structfield.offset).
            #[inline]
            pub fn offset(&self) -> ::planus::Result<u64> {
                ::core::result::Result::Ok(self.0.access(1, "Buffer", "offset")?.unwrap_or(0))
            }

            /// Getter for the [`size` field](Buffer#structfield.size).
            #[inline]
            pub fn size(&self) -> ::planus::Result<u64> {
                ::core::result::Result::Ok(self.0.access(2, "Buffer", "size")?.unwrap_or(0))
            }
        }

        impl<'a> ::core::fmt::Debug for BufferRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("BufferRef");
                if let ::core::option::Option::Some(field_data) = self.data().transpose() {
                    f.field("data", &field_data);
                }
                f.field("offset", &self.offset());
                f.field("size", &self.size());
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<BufferRef<'a>> for Buffer {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: BufferRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    data: value.data()?.map(|v| v.to_vec()),
                    offset: ::core::convert::TryInto::try_into(value.offset()?)?,
                    size: ::core::convert::TryInto::try_into(value.size()?)?,
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for BufferRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for BufferRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location("[BufferRef]", "get", buffer.offset_from_start)
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Buffer>> for Buffer {
            type Value = ::planus::Offset<Buffer>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Buffer>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for BufferRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[BufferRef]", "read_as_root", 0)
                })
            }
        }

        /// The table `Model` in the namespace `tflite`
        ///
        /// Generated from these locations:
        /// * Table `Model` in the file `schema.fbs:392`
        #[derive(
            Clone,
            Debug,
            PartialEq,
            PartialOrd,
            Eq,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub struct Model {
            /// The field `version` in the table `Model`
            pub version: u32,
            /// The field `operator_codes` in the table `Model`
            pub operator_codes:
                ::core::option::Option<::planus::alloc::vec::Vec<self::OperatorCode>>,
            /// The field `subgraphs` in the table `Model`
            pub subgraphs: ::core::option::Option<::planus::alloc::vec::Vec<self::SubGraph>>,
            /// The field `description` in the table `Model`
            pub description: ::core::option::Option<::planus::alloc::string::String>,
            /// The field `buffers` in the table `Model`
            pub buffers: ::core::option::Option<::planus::alloc::vec::Vec<self::Buffer>>,
            /// The field `metadata_buffer` in the table `Model`
            pub metadata_buffer: ::core::option::Option<::planus::alloc::vec::Vec<i32>>,
        }

        #[allow(clippy::derivable_impls)]
        impl ::core::default::Default for Model {
            fn default() -> Self {
                Self {
                    version: 0,
                    operator_codes: ::core::default::Default::default(),
                    subgraphs: ::core::default::Default::default(),
                    description: ::core::default::Default::default(),
                    buffers: ::core::default::Default::default(),
                    metadata_buffer: ::core::default::Default::default(),
                }
            }
        }

        impl Model {
            /// Creates a [ModelBuilder] for serializing an instance of this table.
            #[inline]
            pub fn builder() -> ModelBuilder<()> {
                ModelBuilder(())
            }

            #[allow(clippy::too_many_arguments)]
            pub fn create(
                builder: &mut ::planus::Builder,
                field_version: impl ::planus::WriteAsDefault<u32, u32>,
                field_operator_codes: impl ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::OperatorCode>]>,
                >,
                field_subgraphs: impl ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::SubGraph>]>,
                >,
                field_description: impl ::planus::WriteAsOptional<
                    ::planus::Offset<::core::primitive::str>,
                >,
                field_buffers: impl ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::Buffer>]>,
                >,
                field_metadata_buffer: impl ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            ) -> ::planus::Offset<Self> {
                let prepared_version = field_version.prepare(builder, &0);
                let prepared_operator_codes = field_operator_codes.prepare(builder);
                let prepared_subgraphs = field_subgraphs.prepare(builder);
                let prepared_description = field_description.prepare(builder);
                let prepared_buffers = field_buffers.prepare(builder);
                let prepared_metadata_buffer = field_metadata_buffer.prepare(builder);

                let mut table_writer: ::planus::table_writer::TableWriter<16> =
                    ::core::default::Default::default();
                if prepared_version.is_some() {
                    table_writer.write_entry::<u32>(0);
                }
                if prepared_operator_codes.is_some() {
                    table_writer
                        .write_entry::<::planus::Offset<[::planus::Offset<self::OperatorCode>]>>(1);
                }
                if prepared_subgraphs.is_some() {
                    table_writer
                        .write_entry::<::planus::Offset<[::planus::Offset<self::SubGraph>]>>(2);
                }
                if prepared_description.is_some() {
                    table_writer.write_entry::<::planus::Offset<str>>(3);
                }
                if prepared_buffers.is_some() {
                    table_writer
                        .write_entry::<::planus::Offset<[::planus::Offset<self::Buffer>]>>(4);
                }
                if prepared_metadata_buffer.is_some() {
                    table_writer.write_entry::<::planus::Offset<[i32]>>(5);
                }

                unsafe {
                    table_writer.finish(builder, |object_writer| {
                        if let ::core::option::Option::Some(prepared_version) = prepared_version {
                            object_writer.write::<_, _, 4>(&prepared_version);
                        }
                        if let ::core::option::Option::Some(prepared_operator_codes) =
                            prepared_operator_codes
                        {
                            object_writer.write::<_, _, 4>(&prepared_operator_codes);
                        }
                        if let ::core::option::Option::Some(prepared_subgraphs) = prepared_subgraphs
                        {
                            object_writer.write::<_, _, 4>(&prepared_subgraphs);
                        }
                        if let ::core::option::Option::Some(prepared_description) =
                            prepared_description
                        {
                            object_writer.write::<_, _, 4>(&prepared_description);
                        }
                        if let ::core::option::Option::Some(prepared_buffers) = prepared_buffers {
                            object_writer.write::<_, _, 4>(&prepared_buffers);
                        }
                        if let ::core::option::Option::Some(prepared_metadata_buffer) =
                            prepared_metadata_buffer
                        {
                            object_writer.write::<_, _, 4>(&prepared_metadata_buffer);
                        }
                    });
                }
                builder.current_offset()
            }
        }

        impl ::planus::WriteAs<::planus::Offset<Model>> for Model {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Model> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl ::planus::WriteAsOptional<::planus::Offset<Model>> for Model {
            type Prepared = ::planus::Offset<Self>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Model>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl ::planus::WriteAsOffset<Model> for Model {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Model> {
                Model::create(
                    builder,
                    self.version,
                    &self.operator_codes,
                    &self.subgraphs,
                    &self.description,
                    &self.buffers,
                    &self.metadata_buffer,
                )
            }
        }

        /// Builder for serializing an instance of the [Model] type.
        ///
        /// Can be created using the [Model::builder] method.
        #[derive(Debug)]
        #[must_use]
        pub struct ModelBuilder<State>(State);

        impl ModelBuilder<()> {
            /// Setter for the [`version` field](Model#structfield.version).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn version<T0>(self, value: T0) -> ModelBuilder<(T0,)>
            where
                T0: ::planus::WriteAsDefault<u32, u32>,
            {
                ModelBuilder((value,))
            }

            /// Sets the [`version` field](Model#structfield.version) to the default value.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn version_as_default(self) -> ModelBuilder<(::planus::DefaultValue,)> {
                self.version(::planus::DefaultValue)
            }
        }

        impl<T0> ModelBuilder<(T0,)> {
            /// Setter for the [`operator_codes` field](Model#structfield.operator_codes).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn operator_codes<T1>(self, value: T1) -> ModelBuilder<(T0, T1)>
            where
                T1: ::planus::WriteAsOptional<
                    ::planus::Offset<[::planus::Offset<self::OperatorCode>]>,
                >,
            {
                let (v0,) = self.0;
                ModelBuilder((v0, value))
            }

            /// Sets the [`operator_codes` field](Model#structfield.operator_codes) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn operator_codes_as_null(self) -> ModelBuilder<(T0, ())> {
                self.operator_codes(())
            }
        }

        impl<T0, T1> ModelBuilder<(T0, T1)> {
            /// Setter for the [`subgraphs` field](Model#structfield.subgraphs).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn subgraphs<T2>(self, value: T2) -> ModelBuilder<(T0, T1, T2)>
            where
                T2: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::SubGraph>]>>,
            {
                let (v0, v1) = self.0;
                ModelBuilder((v0, v1, value))
            }

            /// Sets the [`subgraphs` field](Model#structfield.subgraphs) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn subgraphs_as_null(self) -> ModelBuilder<(T0, T1, ())> {
                self.subgraphs(())
            }
        }

        impl<T0, T1, T2> ModelBuilder<(T0, T1, T2)> {
            /// Setter for the [`description` field](Model#structfield.description).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn description<T3>(self, value: T3) -> ModelBuilder<(T0, T1, T2, T3)>
            where
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
            {
                let (v0, v1, v2) = self.0;
                ModelBuilder((v0, v1, v2, value))
            }

            /// Sets the [`description` field](Model#structfield.description) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn description_as_null(self) -> ModelBuilder<(T0, T1, T2, ())> {
                self.description(())
            }
        }

        impl<T0, T1, T2, T3> ModelBuilder<(T0, T1, T2, T3)> {
            /// Setter for the [`buffers` field](Model#structfield.buffers).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn buffers<T4>(self, value: T4) -> ModelBuilder<(T0, T1, T2, T3, T4)>
            where
                T4: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Buffer>]>>,
            {
                let (v0, v1, v2, v3) = self.0;
                ModelBuilder((v0, v1, v2, v3, value))
            }

            /// Sets the [`buffers` field](Model#structfield.buffers) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn buffers_as_null(self) -> ModelBuilder<(T0, T1, T2, T3, ())> {
                self.buffers(())
            }
        }

        impl<T0, T1, T2, T3, T4> ModelBuilder<(T0, T1, T2, T3, T4)> {
            /// Setter for the [`metadata_buffer` field](Model#structfield.metadata_buffer).
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn metadata_buffer<T5>(self, value: T5) -> ModelBuilder<(T0, T1, T2, T3, T4, T5)>
            where
                T5: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            {
                let (v0, v1, v2, v3, v4) = self.0;
                ModelBuilder((v0, v1, v2, v3, v4, value))
            }

            /// Sets the [`metadata_buffer` field](Model#structfield.metadata_buffer) to null.
            #[inline]
            #[allow(clippy::type_complexity)]
            pub fn metadata_buffer_as_null(self) -> ModelBuilder<(T0, T1, T2, T3, T4, ())> {
                self.metadata_buffer(())
            }
        }

        impl<T0, T1, T2, T3, T4, T5> ModelBuilder<(T0, T1, T2, T3, T4, T5)> {
            /// Finish writing the builder to get an [Offset](::planus::Offset) to a serialized [Model].
            #[inline]
            pub fn finish(self, builder: &mut ::planus::Builder) -> ::planus::Offset<Model>
            where
                Self: ::planus::WriteAsOffset<Model>,
            {
                ::planus::WriteAsOffset::prepare(&self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<u32, u32>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::OperatorCode>]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::SubGraph>]>>,
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Buffer>]>>,
                T5: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            > ::planus::WriteAs<::planus::Offset<Model>>
            for ModelBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            type Prepared = ::planus::Offset<Model>;

            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Model> {
                ::planus::WriteAsOffset::prepare(self, builder)
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<u32, u32>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::OperatorCode>]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::SubGraph>]>>,
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Buffer>]>>,
                T5: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            > ::planus::WriteAsOptional<::planus::Offset<Model>>
            for ModelBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            type Prepared = ::planus::Offset<Model>;

            #[inline]
            fn prepare(
                &self,
                builder: &mut ::planus::Builder,
            ) -> ::core::option::Option<::planus::Offset<Model>> {
                ::core::option::Option::Some(::planus::WriteAsOffset::prepare(self, builder))
            }
        }

        impl<
                T0: ::planus::WriteAsDefault<u32, u32>,
                T1: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::OperatorCode>]>>,
                T2: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::SubGraph>]>>,
                T3: ::planus::WriteAsOptional<::planus::Offset<::core::primitive::str>>,
                T4: ::planus::WriteAsOptional<::planus::Offset<[::planus::Offset<self::Buffer>]>>,
                T5: ::planus::WriteAsOptional<::planus::Offset<[i32]>>,
            > ::planus::WriteAsOffset<Model> for ModelBuilder<(T0, T1, T2, T3, T4, T5)>
        {
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> ::planus::Offset<Model> {
                let (v0, v1, v2, v3, v4, v5) = &self.0;
                Model::create(builder, v0, v1, v2, v3, v4, v5)
            }
        }

        /// Reference to a deserialized [Model].
        #[derive(Copy, Clone)]
        pub struct ModelRef<'a>(#[allow(dead_code)] ::planus::table_reader::Table<'a>);

        impl<'a> ModelRef<'a> {
            /// Getter for the [`version` field](Model#structfield.version).
            #[inline]
            pub fn version(&self) -> ::planus::Result<u32> {
                ::core::result::Result::Ok(self.0.access(0, "Model", "version")?.unwrap_or(0))
            }

            /// Getter for the [`operator_codes` field](Model#structfield.operator_codes).
            #[inline]
            pub fn operator_codes(
                &self,
            ) -> ::planus::Result<
                ::core::option::Option<
                    ::planus::Vector<'a, ::planus::Result<self::OperatorCodeRef<'a>>>,
                >,
            > {
                self.0.access(1, "Model", "operator_codes")
            }

            /// Getter for the [`subgraphs` field](Model#structfield.subgraphs).
            #[inline]
            pub fn subgraphs(
                &self,
            ) -> ::planus::Result<
                ::core::option::Option<
                    ::planus::Vector<'a, ::planus::Result<self::SubGraphRef<'a>>>,
                >,
            > {
                self.0.access(2, "Model", "subgraphs")
            }

            /// Getter for the [`description` field](Model#structfield.description).
            #[inline]
            pub fn description(
                &self,
            ) -> ::planus::Result<::core::option::Option<&'a ::core::primitive::str>> {
                self.0.access(3, "Model", "description")
            }

            /// Getter for the [`buffers` field](Model#structfield.buffers).
            #[inline]
            pub fn buffers(
                &self,
            ) -> ::planus::Result<
                ::core::option::Option<::planus::Vector<'a, ::planus::Result<self::BufferRef<'a>>>>,
            > {
                self.0.access(4, "Model", "buffers")
            }

            /// Getter for the [`metadata_buffer` field](Model#structfield.metadata_buffer).
            #[inline]
            pub fn metadata_buffer(
                &self,
            ) -> ::planus::Result<::core::option::Option<::planus::Vector<'a, i32>>> {
                self.0.access(5, "Model", "metadata_buffer")
            }
        }

        impl<'a> ::core::fmt::Debug for ModelRef<'a> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut f = f.debug_struct("ModelRef");
                f.field("version", &self.version());
                if let ::core::option::Option::Some(field_operator_codes) =
                    self.operator_codes().transpose()
                {
                    f.field("operator_codes", &field_operator_codes);
                }
                if let ::core::option::Option::Some(field_subgraphs) = self.subgraphs().transpose()
                {
                    f.field("subgraphs", &field_subgraphs);
                }
                if let ::core::option::Option::Some(field_description) =
                    self.description().transpose()
                {
                    f.field("description", &field_description);
                }
                if let ::core::option::Option::Some(field_buffers) = self.buffers().transpose() {
                    f.field("buffers", &field_buffers);
                }
                if let ::core::option::Option::Some(field_metadata_buffer) =
                    self.metadata_buffer().transpose()
                {
                    f.field("metadata_buffer", &field_metadata_buffer);
                }
                f.finish()
            }
        }

        impl<'a> ::core::convert::TryFrom<ModelRef<'a>> for Model {
            type Error = ::planus::Error;

            #[allow(unreachable_code)]
            fn try_from(value: ModelRef<'a>) -> ::planus::Result<Self> {
                ::core::result::Result::Ok(Self {
                    version: ::core::convert::TryInto::try_into(value.version()?)?,
                    operator_codes: if let ::core::option::Option::Some(operator_codes) =
                        value.operator_codes()?
                    {
                        ::core::option::Option::Some(operator_codes.to_vec_result()?)
                    } else {
                        ::core::option::Option::None
                    },
                    subgraphs: if let ::core::option::Option::Some(subgraphs) = value.subgraphs()? {
                        ::core::option::Option::Some(subgraphs.to_vec_result()?)
                    } else {
                        ::core::option::Option::None
                    },
                    description: value.description()?.map(::core::convert::Into::into),
                    buffers: if let ::core::option::Option::Some(buffers) = value.buffers()? {
                        ::core::option::Option::Some(buffers.to_vec_result()?)
                    } else {
                        ::core::option::Option::None
                    },
                    metadata_buffer: if let ::core::option::Option::Some(metadata_buffer) =
                        value.metadata_buffer()?
                    {
                        ::core::option::Option::Some(metadata_buffer.to_vec()?)
                    } else {
                        ::core::option::Option::None
                    },
                })
            }
        }

        impl<'a> ::planus::TableRead<'a> for ModelRef<'a> {
            #[inline]
            fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::core::result::Result<Self, ::planus::errors::ErrorKind> {
                ::core::result::Result::Ok(Self(::planus::table_reader::Table::from_buffer(
                    buffer, offset,
                )?))
            }
        }

        impl<'a> ::planus::VectorReadInner<'a> for ModelRef<'a> {
            type Error = ::planus::Error;
            const STRIDE: usize = 4;

            unsafe fn from_buffer(
                buffer: ::planus::SliceWithStartOffset<'a>,
                offset: usize,
            ) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(buffer, offset).map_err(|error_kind| {
                    error_kind.with_error_location("[ModelRef]", "get", buffer.offset_from_start)
                })
            }
        }

        /// # Safety
        /// The planus compiler generates implementations that initialize
        /// the bytes in `write_values`.
        unsafe impl ::planus::VectorWrite<::planus::Offset<Model>> for Model {
            type Value = ::planus::Offset<Model>;
            const STRIDE: usize = 4;
            #[inline]
            fn prepare(&self, builder: &mut ::planus::Builder) -> Self::Value {
                ::planus::WriteAs::prepare(self, builder)
            }

            #[inline]
            unsafe fn write_values(
                values: &[::planus::Offset<Model>],
                bytes: *mut ::core::mem::MaybeUninit<u8>,
                buffer_position: u32,
            ) {
                let bytes = bytes as *mut [::core::mem::MaybeUninit<u8>; 4];
                for (i, v) in ::core::iter::Iterator::enumerate(values.iter()) {
                    ::planus::WriteAsPrimitive::write(
                        v,
                        ::planus::Cursor::new(unsafe { &mut *bytes.add(i) }),
                        buffer_position - (Self::STRIDE * i) as u32,
                    );
                }
            }
        }

        impl<'a> ::planus::ReadAsRoot<'a> for ModelRef<'a> {
            fn read_as_root(slice: &'a [u8]) -> ::planus::Result<Self> {
                ::planus::TableRead::from_buffer(
                    ::planus::SliceWithStartOffset {
                        buffer: slice,
                        offset_from_start: 0,
                    },
                    0,
                )
                .map_err(|error_kind| {
                    error_kind.with_error_location("[ModelRef]", "read_as_root", 0)
                })
            }
        }
    }
}
